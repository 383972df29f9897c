# SPDX-License-Identifier: Apache-2.0
"""Errors as ``application/problem+json`` (RFC 9457), mapped in this one place.

Handled: :class:`attestor.errors.Error` (stable ``type`` and status per class,
from :data:`STATUS_BY_ERROR`), werkzeug
``HTTPException`` (including flask-smorest's validation errors, whose messages
become the ``errors`` member), and everything else as a generic 500 that is
logged but never shows a stack trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from attestor import errors

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "STATUS_BY_ERROR",
    "TYPE_PREFIX",
    "ProblemSchema",
    "problem",
    "register_error_handlers",
    "status_of",
]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: ``type`` of a problem raised on purpose is ``TYPE_PREFIX + Error.slug``.
TYPE_PREFIX = "urn:attestor:problem:"

#: HTTP status of each error class; a subclass not listed takes its nearest
#: listed base's (e.g. ``ScanBudgetExceeded`` is a ``TooLarge``, so 413).
STATUS_BY_ERROR: dict[type[errors.Error], int] = {
    errors.Error: 500,
    errors.ConfigError: 500,
    errors.InvalidInput: 400,
    errors.TooLarge: 413,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PolicyDenied: 403,
    errors.VerificationError: 422,
    errors.UpstreamError: 502,
    errors.GatewayTimeout: 504,
    errors.Unavailable: 503,
}


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details; extension members are allowed."""

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(required=True, metadata={"example": "urn:attestor:problem:not-found"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String()
    instance = ma.fields.String()
    request_id = ma.fields.String()
    errors = ma.fields.Dict(metadata={"description": "Validation messages by location and field."})


def problem(
    status: int,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a problem+json response for the current request."""
    body: dict[str, Any] = dict(extra or {})
    body.update(
        {
            "type": type_,
            "title": title or _phrase(status),
            "status": status,
            "instance": request.path,
        }
    )
    if detail:
        body["detail"] = detail
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def status_of(error: errors.Error) -> int:
    """Return the HTTP status the API answers ``error`` with."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def _title(error: errors.Error) -> str:
    return error.slug.replace("-", " ").capitalize()


def handle_error(error: errors.Error) -> Response:
    """Render one of our own errors."""
    headers: dict[str, str] = {}
    if isinstance(error, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="attestor"'
    if isinstance(error, errors.Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    status = status_of(error)
    if status >= 500:
        log.error("%s: %s", type(error).__name__, error.message)
    extra = {k: v for k, v in error.detail.items() if k not in {"type", "title", "status"}}
    return problem(
        status,
        type_=TYPE_PREFIX + error.slug,
        title=_title(error),
        detail=error.message,
        extra=extra,
        headers=headers,
    )


def handle_http_exception(error: HTTPException) -> Response:
    """Render a werkzeug HTTP error, including flask-smorest validation errors."""
    status = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return handle_error(
            errors.TooLarge(
                f"request body over the limit of {limit} bytes",
                detail={"limit_bytes": limit} if limit is not None else None,
            )
        )
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    data = getattr(error, "data", None)
    type_ = "about:blank"
    detail = error.description
    if isinstance(data, dict) and "messages" in data:
        # flask-smorest / webargs: abort(422 or 400, messages={location: {field: [...]}})
        extra["errors"] = data["messages"]
        type_ = TYPE_PREFIX + errors.InvalidInput.slug
        detail = "the request did not match its schema"
    if isinstance(data, dict) and isinstance(data.get("headers"), dict):
        headers.update(data["headers"])
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(sorted(valid_methods))
    return problem(status, type_=type_, detail=detail, extra=extra, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    """Log an unexpected exception and return a generic 500 without details."""
    log.exception("unhandled %s", type(error).__name__)
    return problem(500, detail="an internal error occurred; quote the request_id when reporting it")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers (after flask-smorest's, which they replace)."""
    app.register_error_handler(errors.Error, handle_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
