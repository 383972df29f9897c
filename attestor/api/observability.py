# SPDX-License-Identifier: Apache-2.0
"""Request ids, structured JSON access logs and request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from attestor.api._state import app_state
from attestor.logs import JsonFormatter, configure_logging

__all__ = ["JsonFormatter", "configure_logging", "install_observability"]

access_log = logging.getLogger("attestor.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller-chosen id is echoed only when it is short and plain (log injection).
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _start() -> None:
    g.start = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    duration = time.perf_counter() - g.get("start", time.perf_counter())
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    labels = {"endpoint": rule, "method": request.method, "status": str(response.status_code)}
    metrics = app_state().metrics
    metrics.requests.labels(**labels).inc()
    metrics.latency.labels(**labels).observe(duration)
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 3),
        },
    )
    return response


def install_observability(app: Flask) -> None:
    """Register the hooks; the request id is set before any other hook runs."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
