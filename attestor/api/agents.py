# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/agents``: node agents register, send heartbeats; admins list silent nodes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import marshmallow as ma

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, ensure_agent_scope, require_roles
from attestor.errors import Forbidden
from attestor.store import agents as agent_store
from attestor.store import signing_keys

__all__ = ["DEFAULT_SILENT_FOR", "blp"]

blp = Blueprint("agents", __name__, url_prefix="/v1/agents", description="Node agents.")

#: Without ``silent_for``, an agent counts as silent after this long without a
#: heartbeat or registration (several of the agent's default intervals).
DEFAULT_SILENT_FOR = timedelta(minutes=5)
#: ``silent_for`` above this is surely a mistake (ten years).
MAX_SILENT_FOR_SECONDS = 10 * 365 * 24 * 3600


def _no_nul(value: str) -> None:
    # PostgreSQL text cannot hold NUL: it would be a 500 there, so refuse it here.
    if "\x00" in value:
        raise ma.ValidationError("must not contain NUL")


class AgentRegisterSchema(ma.Schema):
    hostname = ma.fields.String(
        required=True, validate=[ma.validate.Length(min=1, max=255), _no_nul]
    )
    mode = ma.fields.String(required=True, validate=ma.validate.OneOf(agent_store.AGENT_MODES))
    version = ma.fields.String(required=True, validate=[ma.validate.Length(min=1, max=64), _no_nul])
    namespaces = ma.fields.List(
        ma.fields.String(validate=[ma.validate.Length(min=1, max=256), _no_nul]),
        load_default=list,
        validate=ma.validate.Length(max=256),
        metadata={"description": "containerd namespaces the agent covers."},
    )


class PinnedKeySchema(ma.Schema):
    keyid = ma.fields.String(required=True)
    algorithm = ma.fields.String(required=True)
    public_key_pem = ma.fields.String(required=True)
    status = ma.fields.String(
        required=True,
        metadata={"enum": ["active", "retired", "revoked"]},
    )
    created = ma.fields.DateTime(required=True)


class AgentRegisteredSchema(ma.Schema):
    agent_id = ma.fields.String(required=True)
    keys = ma.fields.List(
        ma.fields.Nested(PinnedKeySchema),
        required=True,
        metadata={
            "description": "Every signing key: active and retired ones verify, "
            "revoked ones must not be trusted."
        },
    )


# The counters are INTEGER columns: larger values are a 500 on SQLite and PostgreSQL.
_COUNTER = ma.validate.Range(min=0, max=2**31 - 1)


class AgentHeartbeatSchema(ma.Schema):
    containers = ma.fields.Integer(required=True, strict=True, validate=_COUNTER)
    layers = ma.fields.Integer(required=True, strict=True, validate=_COUNTER)
    pending_violations = ma.fields.Integer(required=True, strict=True, validate=_COUNTER)


class AgentQuerySchema(ma.Schema):
    silent_for = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(min=0, max=MAX_SILENT_FOR_SECONDS),
        metadata={"description": "Seconds; list only agents silent at least this long."},
    )


class AgentSchema(ma.Schema):
    id = ma.fields.String(required=True)
    hostname = ma.fields.String(required=True)
    mode = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    namespaces = ma.fields.List(ma.fields.String(), required=True)
    registered_at = ma.fields.DateTime(required=True)
    last_heartbeat_at = ma.fields.DateTime(allow_none=True)
    last_seen_at = ma.fields.DateTime(required=True)
    silent = ma.fields.Boolean(required=True)
    containers = ma.fields.Integer(allow_none=True)
    layers = ma.fields.Integer(allow_none=True)
    pending_violations = ma.fields.Integer(allow_none=True)


class AgentListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AgentSchema), required=True)


def _own_agent_id() -> str:
    agent_id = current_principal().agent_id
    if not agent_id:
        raise Forbidden("this token is bound to no agent")
    return agent_id


@blp.route("/register", methods=["POST"])
@require_roles("agent")
@blp.arguments(AgentRegisterSchema)
@blp.response(200, AgentRegisteredSchema)
def register(body: dict[str, Any]) -> dict[str, Any]:
    """Register (or re-register) the agent bound to the token; returns the keys to pin."""
    agent_id = _own_agent_id()
    state = app_state()
    with state.session_factory.begin() as session:
        agent_store.register_agent(session, agent_id=agent_id, now=state.clock(), **body)
        keys = signing_keys.list_keys(session)
    return {
        "agent_id": agent_id,
        # Never the signer URI: only public material leaves the server.
        "keys": [
            {
                "keyid": k.keyid,
                "algorithm": k.algorithm,
                "public_key_pem": k.public_key_pem,
                "status": k.status,
                "created": k.created_at,
            }
            for k in keys
        ],
    }


@blp.route("/<string:agent_id>/heartbeat", methods=["POST"])
@require_roles("agent")
@blp.arguments(AgentHeartbeatSchema)
@blp.response(204)
def heartbeat(body: dict[str, Any], agent_id: str) -> None:
    """Record that the agent is alive, with its current counters."""
    ensure_agent_scope(agent_id)
    state = app_state()
    with state.session_factory.begin() as session:
        agent_store.record_heartbeat(session, agent_id, now=state.clock(), **body)


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(AgentQuerySchema, location="query")
@blp.response(200, AgentListSchema)
def list_agents(query: dict[str, Any]) -> dict[str, Any]:
    """List agents; with ``silent_for``, only the nodes that went silent."""
    state = app_state()
    now = state.clock()
    silent_for = timedelta(seconds=query["silent_for"]) if query["silent_for"] is not None else None
    with state.session_factory() as session:
        rows = agent_store.list_agents(session, now=now, silent_for=silent_for)
    threshold = silent_for if silent_for is not None else DEFAULT_SILENT_FOR
    return {
        "items": [
            {
                **row.__dict__,
                "namespaces": list(row.namespaces),
                "last_seen_at": row.last_seen_at,
                "silent": row.is_silent(now=now, silent_for=threshold),
            }
            for row in rows
        ]
    }
