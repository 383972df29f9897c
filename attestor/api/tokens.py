# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/tokens``: admins create, list and revoke bearer tokens."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.services import tokens as token_service
from attestor.store import tokens as token_store

__all__ = ["blp"]

blp = Blueprint("tokens", __name__, url_prefix="/v1/tokens", description="Bearer tokens.")


def _no_nul(value: str) -> None:
    # PostgreSQL text cannot hold NUL: it would be a 500 there, so refuse it here.
    if "\x00" in value:
        raise ma.ValidationError("must not contain NUL")


class TokenCreateSchema(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(token_store.ROLES))
    agent_id = ma.fields.String(
        load_default=None,
        validate=[ma.validate.Length(min=1, max=255), _no_nul],
        metadata={"description": "Required for role agent; the one agent the token binds to."},
    )
    name = ma.fields.String(load_default="", validate=[ma.validate.Length(max=255), _no_nul])


class TokenSchema(ma.Schema):
    id = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    agent_id = ma.fields.String(allow_none=True)
    name = ma.fields.String()
    created_at = ma.fields.DateTime(required=True)
    last_used_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = ma.fields.String(
        required=True, metadata={"description": "The secret; shown only in this response."}
    )


class TokenListSchema(ma.Schema):
    tokens = ma.fields.List(ma.fields.Nested(TokenSchema), required=True)


@blp.route("", methods=["POST"])
@require_roles("admin")
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
def create_token(body: dict[str, Any]) -> dict[str, Any]:
    """Create a token; the plaintext is returned once and never stored."""
    state = app_state()
    with state.session_factory.begin() as session:
        plaintext, row = token_service.create_token(
            session,
            role=body["role"],
            agent_id=body["agent_id"],
            name=body["name"],
            actor=f"token:{current_principal().token_id}",
            now=state.clock(),
        )
    return {**row.__dict__, "token": plaintext}


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.response(200, TokenListSchema)
def list_tokens() -> dict[str, Any]:
    """List tokens without their secrets."""
    with app_state().session_factory() as session:
        return {"tokens": token_store.list_tokens(session)}


@blp.route("/<string:token_id>", methods=["DELETE"])
@require_roles("admin")
@blp.response(204)
def revoke_token(token_id: str) -> None:
    """Revoke a token.

    It stops authenticating at once in this server process, and within 1 s in
    every other process and replica (docs/revocation-feed.md, "Caches").
    """
    state = app_state()
    with state.session_factory.begin() as session:
        token_service.revoke_token(
            session,
            token_id,
            actor=f"token:{current_principal().token_id}",
            now=state.clock(),
        )
