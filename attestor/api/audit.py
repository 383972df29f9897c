# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/audit``: the hash-chained log of administrative changes, for admins.

Each item carries what its hash covers, so a reader can recompute the chain
(docs/api.md, "Audit log"); ``head`` is the chain's last row when the page
was read, to record outside the database.
"""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import require_roles
from attestor.services import audit as audit_service
from attestor.store.audit import AuditEntry, time_text

__all__ = ["blp"]

blp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit log.")


class AuditQuerySchema(ma.Schema):
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=audit_service.MAX_PAGE)
    )
    cursor = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=512),
        metadata={"description": "From `next`."},
    )
    action = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "Only actions starting with this, e.g. `policy.`."},
    )


class AuditEntrySchema(ma.Schema):
    seq = ma.fields.Integer(required=True)
    time = ma.fields.String(
        required=True, metadata={"description": "UTC, microseconds, as hashed."}
    )
    actor = ma.fields.String(required=True)
    action = ma.fields.String(required=True)
    target = ma.fields.String(required=True)
    change = ma.fields.Dict(required=True)
    prev_hash = ma.fields.String(required=True)
    hash = ma.fields.String(required=True)


class HeadSchema(ma.Schema):
    seq = ma.fields.Integer(required=True)
    hash = ma.fields.String(required=True)


class AuditPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema), required=True)
    next = ma.fields.String(allow_none=True, required=True)
    head = ma.fields.Nested(HeadSchema, required=True)


def _change(text: str) -> dict[str, Any]:
    # Only an edit of the database makes this fail; show it rather than fail the page.
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparsable": text}
    return value if isinstance(value, dict) else {"unparsable": text}


def _item(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": time_text(entry.created_at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "change": _change(entry.change),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def list_audit(query: dict[str, Any]) -> dict[str, Any]:
    """Audit rows in sequence order; follow ``next`` for the next page."""
    with app_state().session_factory() as session:
        found = audit_service.page(
            session, cursor=query["cursor"], limit=query["limit"], action_prefix=query["action"]
        )
    return {
        "items": [_item(e) for e in found.entries],
        "next": found.next_cursor,
        "head": {"seq": found.head_seq, "hash": found.head_hash},
    }
