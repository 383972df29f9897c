# SPDX-License-Identifier: Apache-2.0
"""Request body limits: ``max_body_bytes`` everywhere, a larger cap for bulk endpoints.

Werkzeug enforces ``request.max_content_length`` when the body is read and
raises ``RequestEntityTooLarge``, which ``problems`` renders as a 413 problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

from attestor.api._state import app_state

__all__ = ["bulk_body", "install_body_limits"]

F = TypeVar("F", bound=Callable[..., Any])
BULK_ATTR = "_attestor_bulk_body"


def bulk_body(view: F) -> F:
    """Let this view accept bodies up to ``max_bulk_body_bytes``."""
    setattr(view, BULK_ATTR, True)
    return view


def _is_bulk(view: Callable[..., Any] | None) -> bool:
    while view is not None:
        if getattr(view, BULK_ATTR, False):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def _set_limit() -> None:
    settings = app_state().settings
    view = current_app.view_functions.get(request.endpoint or "")
    if _is_bulk(view):
        request.max_content_length = settings.max_bulk_body_bytes
    else:
        request.max_content_length = settings.max_body_bytes


def install_body_limits(app: Flask) -> None:
    """Set the global cap and the per-request hook."""
    app.config["MAX_CONTENT_LENGTH"] = app_state(app).settings.max_body_bytes
    app.before_request(_set_limit)
