# SPDX-License-Identifier: Apache-2.0
"""Bearer-token authentication and role checks for views.

Every view is declared either ``@public`` or ``@require_roles(...)``;
``create_app`` refuses to start when one is neither (fail closed). 401 means
"who are you?" (no, unknown or revoked token) and carries ``WWW-Authenticate``;
403 means "you may not" (valid token, wrong role).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Flask, g, request
from flask_smorest.utils import deepupdate
from werkzeug.exceptions import UnprocessableEntity

from attestor.api._state import app_state
from attestor.errors import Forbidden, Unauthorized
from attestor.store import tokens

__all__ = [
    "Principal",
    "auth_declaration",
    "current_principal",
    "ensure_agent_scope",
    "public",
    "require_roles",
]

F = TypeVar("F", bound=Callable[..., Any])

ROLES_ATTR = "_attestor_roles"
PUBLIC_ATTR = "_attestor_public"
SECURITY_SCHEME = "bearerAuth"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """The authenticated caller."""

    token_id: str
    role: str
    #: Set for agent tokens: the one agent this token may speak for.
    agent_id: str | None


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("a bearer token is required")
    return value.strip()


def _authenticate() -> Principal:
    # Only the hash goes further (the cache key, the database lookup).
    digest = tokens.hash_token(_bearer_token())
    state = app_state()
    row = state.token_cache.authenticate(state.session_factory, digest, now=state.clock())
    if row is None:
        raise Unauthorized("the bearer token is unknown or revoked")
    return Principal(token_id=row.id, role=row.role, agent_id=row.agent_id)


def _add_apidoc(wrapper: Any, doc: dict[str, Any]) -> None:
    # flask-smorest reads ``_apidoc["manual_doc"]``, as its ``Blueprint.doc`` writes it.
    apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    # Merge, don't replace: a ``@blp.doc(responses=...)`` below keeps its entries.
    deepupdate(manual, doc)
    wrapper._apidoc = apidoc


def require_roles(*roles: str) -> Callable[[F], F]:
    """Allow only callers whose token has one of ``roles``.

    Put it above ``@bp.arguments`` so that authentication runs before the body
    is parsed.

    Raises:
        Unauthorized: No, unknown or revoked token (from the wrapped view).
        Forbidden: The token's role is not in ``roles``.
    """
    allowed = frozenset(roles)
    if not allowed or not allowed <= set(tokens.ROLES):
        raise ValueError(f"roles must be a non-empty subset of {tokens.ROLES}, got {roles}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticate()
            if principal.role not in allowed:
                raise Forbidden(
                    f"role {principal.role!r} may not call this endpoint",
                    detail={"allowed_roles": sorted(allowed)},
                )
            g.principal = principal
            _refuse_nul_in_json_body()
            return view(*args, **kwargs)

        setattr(wrapper, ROLES_ATTR, allowed)
        _add_apidoc(
            wrapper,
            {
                "security": [{SECURITY_SCHEME: []}],
                "x-roles": sorted(allowed),
                "responses": {
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                },
            },
        )
        return cast(F, wrapper)

    return decorator


def _refuse_nul_in_json_body() -> None:
    # No text we accept may hold NUL (PostgreSQL text cannot, and no id, digest,
    # reason or path has one). JSON can carry it only escaped, so one scan of the
    # raw body covers every field of every endpoint; it runs after authentication
    # so that callers without a token never make us read a large body. Every
    # media type the body parsers read as JSON (application/json and any
    # application/*+json) is checked, not only application/json.
    if not request.is_json:
        return
    data = request.get_data(cache=True)
    if b"\\u0000" not in data:
        return
    try:
        document = json.loads(data)
    except ValueError:
        return  # not JSON: the body parser answers that
    messages = _nul_messages(document)
    if messages:
        # 422 with field paths, like every other field that fails validation.
        error = UnprocessableEntity()
        error.data = {"messages": {"json": messages}}  # type: ignore[attr-defined]
        raise error


def _nul_messages(value: object) -> dict[str, Any] | None:
    """Validation messages, shaped like marshmallow's, for every string holding NUL."""
    if isinstance(value, str):
        return {"_nul": ["must not contain NUL"]} if "\x00" in value else None
    items: list[tuple[str, object]]
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
        bad_keys = [k for k in items if "\x00" in k[0]]
        if bad_keys:
            return {"_schema": ["member names must not contain NUL"]}
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return None
    found: dict[str, Any] = {}
    for key, child in items:
        inner = _nul_messages(child)
        if inner is not None:
            found[key] = inner.get("_nul", inner)
    return found or None


def public(view: F) -> F:
    """Declare a view that needs no token (health, metrics)."""
    setattr(view, PUBLIC_ATTR, True)
    _add_apidoc(view, {"security": []})
    return view


def current_principal() -> Principal:
    """The caller of a ``require_roles`` view."""
    principal = g.get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized("a bearer token is required")
    return principal


def ensure_agent_scope(agent_id: str) -> None:
    """Refuse an agent token that speaks for another agent; other roles pass.

    Raises:
        Forbidden: The caller's agent token is bound to a different agent id.
    """
    principal = current_principal()
    if principal.role == "agent" and principal.agent_id != agent_id:
        raise Forbidden(
            f"this agent token is bound to agent {principal.agent_id!r}, not {agent_id!r}"
        )


def auth_declaration(view: Callable[..., Any]) -> frozenset[str] | None:
    """Roles a view allows; empty for public views; ``None`` when undeclared."""
    if getattr(view, PUBLIC_ATTR, False):
        return frozenset()
    roles = getattr(view, ROLES_ATTR, None)
    return roles if isinstance(roles, frozenset) else None


def check_declarations(app: Flask, *, exempt: frozenset[str]) -> None:
    """Refuse to start when a view is neither public nor role-checked.

    Raises:
        RuntimeError: A programming error; the message names the endpoint.
    """
    for endpoint, view in app.view_functions.items():
        if endpoint in exempt or endpoint.endswith(".static"):
            continue
        views = [view]
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            views = [getattr(view_class, m.lower()) for m in view_class.methods or ()]
        for v in views:
            if auth_declaration(v) is None:
                raise RuntimeError(f"endpoint {endpoint} lacks @public or @require_roles")
