# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/violations``: agents report runtime violations in batches; admins list them.

The agent id of a stored violation is the one the caller's token is bound to;
a body cannot name another agent. Each violation's ``id`` is its idempotency
key (see :mod:`attestor.store.violations`), so a whole batch may be replayed.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import marshmallow as ma
from flask import request

from attestor.api._json_body import Blueprint
from attestor.api._json_schema import check_against
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.api.limits import bulk_body
from attestor.errors import Forbidden, InvalidInput
from attestor.store import violations as violation_store
from attestor.violation_kinds import VIOLATION_KINDS

__all__ = ["blp"]

log = logging.getLogger(__name__)

blp = Blueprint(
    "violations", __name__, url_prefix="/v1/violations", description="Runtime violations."
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Visible ASCII only: the key is logged, so no control characters (log injection).
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_DIGEST = {"pattern": "^sha256:[0-9a-f]{64}$"}


class ViolationInSchema(ma.Schema):
    """One violation; ``schemas/violation.schema.json`` holds the full rules."""

    id = ma.fields.String(
        required=True,
        metadata={"format": "uuid", "description": "Idempotency key, chosen by the agent."},
    )
    # Null only in a trust-anomaly, which concerns the agent, not a container.
    container_id = ma.fields.String(required=True, allow_none=True)
    # Null only in an unverified violation (the JSON Schema enforces it).
    image_digest = ma.fields.String(required=True, allow_none=True, metadata=_DIGEST)
    layer_digest = ma.fields.String(required=True, allow_none=True, metadata=_DIGEST)
    path = ma.fields.String(required=True, allow_none=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(VIOLATION_KINDS))
    detail = ma.fields.Dict(required=True)
    detected_at = ma.fields.AwareDateTime(required=True)

    @ma.validates_schema(pass_original=True)
    def _full_check(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        check_against(original, "violation")
        for name in ("container_id", "path"):
            # PostgreSQL text cannot hold NUL; no real path or container id has one.
            if "\x00" in (data[name] or ""):
                raise ma.ValidationError("must not contain NUL", field_name=name)
        size = len(json.dumps(data["detail"], separators=(",", ":")).encode())
        if size > violation_store.MAX_DETAIL_BYTES:
            raise ma.ValidationError(
                f"detail is {size} bytes of JSON, over {violation_store.MAX_DETAIL_BYTES}",
                field_name="detail",
            )


class ViolationBatchSchema(ma.Schema):
    violations = ma.fields.List(
        ma.fields.Nested(ViolationInSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=violation_store.MAX_BATCH),
    )


class ViolationBatchResultSchema(ma.Schema):
    accepted = ma.fields.Integer(required=True, metadata={"description": "Newly stored."})
    duplicates = ma.fields.Integer(
        required=True, metadata={"description": "Already stored (a replay); not stored again."}
    )


class ViolationQuerySchema(ma.Schema):
    agent_id = ma.fields.String(load_default=None)
    container_id = ma.fields.String(load_default=None)
    image_digest = ma.fields.String(load_default=None)
    layer_digest = ma.fields.String(load_default=None)
    kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(VIOLATION_KINDS))
    since = ma.fields.AwareDateTime(
        load_default=None, metadata={"description": "Only violations detected at or after."}
    )
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=violation_store.MAX_PAGE)
    )
    cursor = ma.fields.String(load_default=None, metadata={"description": "From `next`."})


class ViolationSchema(ma.Schema):
    id = ma.fields.String(required=True)
    agent_id = ma.fields.String(required=True)
    container_id = ma.fields.String(required=True, allow_none=True)
    image_digest = ma.fields.String(required=True, allow_none=True)
    layer_digest = ma.fields.String(allow_none=True)
    path = ma.fields.String(allow_none=True)
    kind = ma.fields.String(required=True)
    detail = ma.fields.Dict(required=True)
    detected_at = ma.fields.DateTime(required=True)
    received_at = ma.fields.DateTime(required=True)


class ViolationPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ViolationSchema), required=True)
    next = ma.fields.String(allow_none=True, required=True)


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY_RE.match(key):
        raise InvalidInput(f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters")
    return key


@blp.route("", methods=["POST"])
@bulk_body
@require_roles("agent")
@blp.arguments(ViolationBatchSchema)
@blp.response(200, ViolationBatchResultSchema)
@blp.doc(
    parameters=[
        {
            "in": "header",
            "name": IDEMPOTENCY_HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Key of the whole batch (logged); each violation's id is "
            "what the server dedupes on.",
        }
    ]
)
def report_violations(body: dict[str, Any]) -> dict[str, int]:
    """Store a batch of violations; replays are counted as duplicates, never stored twice.

    The batch is checked whole before anything is stored: one invalid violation
    rejects all of it (422), so the agent can find it and resend the rest.
    """
    key = _idempotency_key()
    agent_id = current_principal().agent_id
    if not agent_id:
        raise Forbidden("this token is bound to no agent")
    batch = [
        violation_store.NewViolation(
            violation_id=v["id"],
            container_id=v["container_id"],
            image_digest=v["image_digest"],
            layer_digest=v["layer_digest"],
            path=v["path"],
            kind=v["kind"],
            detail=v["detail"],
            detected_at=v["detected_at"],
        )
        for v in body["violations"]
    ]
    state = app_state()
    with state.session_factory.begin() as session:
        result = violation_store.add_violations(
            session, agent_id=agent_id, violations=batch, now=state.clock()
        )
    log.info(
        "violations from agent %s: %d accepted, %d duplicates (batch key %s)",
        agent_id,
        result.accepted,
        result.duplicates,
        key or "-",
    )
    return {"accepted": result.accepted, "duplicates": result.duplicates}


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(ViolationQuerySchema, location="query")
@blp.response(200, ViolationPageSchema)
def list_violations(query: dict[str, Any]) -> dict[str, Any]:
    """List violations, newest first, filtered; follow ``next`` for the next page."""
    filters = violation_store.ViolationFilter(
        agent_id=query["agent_id"],
        container_id=query["container_id"],
        image_digest=query["image_digest"],
        layer_digest=query["layer_digest"],
        kind=query["kind"],
        since=query["since"],
    )
    with app_state().session_factory() as session:
        page = violation_store.list_violations(
            session, filters, limit=query["limit"], cursor=query["cursor"]
        )
    return {
        "items": [
            {
                **{k: v for k, v in row.__dict__.items() if k != "violation_id"},
                "id": row.violation_id,
            }
            for row in page.items
        ],
        "next": page.next,
    }
