# SPDX-License-Identifier: Apache-2.0
"""Request bodies go through the one strict JSON loader, like every signed document.

Flask and webargs (flask-smorest's argument parser) each call ``json.loads``,
which keeps the last of two repeated members and accepts ``NaN``. An envelope
posted inside a request body would then be checked as one of two readings of
the bytes the client sent. Both are routed to :func:`attestor.json_strict.loads_strict`
instead, so such a body is refused (400, problem+json) before any view runs.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from attestor.json_strict import loads_strict

__all__ = ["Blueprint", "StrictJSONProvider"]

_WHAT = "request body"


class StrictJSONProvider(DefaultJSONProvider):
    """``request.get_json()`` with the strict loader (responses are unchanged)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse a request body.

        Raises:
            InvalidInput: the body is not strict JSON (the message says why).
        """
        return loads_strict(s, what=_WHAT)


class _StrictArgumentsParser(FlaskParser):
    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return loads_strict(req.get_data(cache=True), what=_WHAT)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint whose JSON bodies are parsed strictly."""

    ARGUMENTS_PARSER = _StrictArgumentsParser()
