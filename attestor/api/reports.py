# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/reports``: container provenance reports from agents; admins read them."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request

from attestor.api._json_body import Blueprint
from attestor.api._json_schema import check_against
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.api.limits import bulk_body
from attestor.errors import Forbidden
from attestor.store import reports as report_store

__all__ = ["blp"]

blp = Blueprint(
    "reports", __name__, url_prefix="/v1/reports", description="Container provenance reports."
)

_FULL_SCHEMA = "schemas/container-report.schema.json has the full rules."


class ReportImageSchema(ma.Schema):
    name = ma.fields.String(required=True)
    digest = ma.fields.String(required=True)


class ReportInSchema(ma.Schema):
    """A container report; ``schemas/container-report.schema.json`` holds the full rules."""

    apiVersion = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    container_id = ma.fields.String(required=True)
    namespace = ma.fields.String()
    image = ma.fields.Nested(ReportImageSchema, required=True)
    layers = ma.fields.List(ma.fields.Dict(), required=True, metadata={"description": _FULL_SCHEMA})
    history = ma.fields.List(
        ma.fields.Dict(), required=True, metadata={"description": _FULL_SCHEMA}
    )
    anomalies = ma.fields.List(
        ma.fields.Dict(), required=True, metadata={"description": _FULL_SCHEMA}
    )
    finalized = ma.fields.Boolean(required=True)
    generated_at = ma.fields.AwareDateTime(required=True)

    @ma.validates_schema(pass_original=True)
    def _full_check(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        check_against(original, "container-report")
        # PostgreSQL text cannot hold NUL; no real container id, namespace or image name has one.
        if "\x00" in data["container_id"] + data.get("namespace", "") + data["image"]["name"]:
            raise ma.ValidationError("container_id, namespace and image.name must not contain NUL")


class ReportAcceptedSchema(ma.Schema):
    id = ma.fields.String(
        required=True,
        metadata={"description": "The stored report (an existing one for a replay)."},
    )


class ReportQuerySchema(ma.Schema):
    agent_id = ma.fields.String(load_default=None)
    container_id = ma.fields.String(load_default=None)
    image_digest = ma.fields.String(load_default=None)
    finalized = ma.fields.Boolean(load_default=None)
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=report_store.MAX_PAGE)
    )
    cursor = ma.fields.String(load_default=None, metadata={"description": "From `next`."})


class ReportSummarySchema(ma.Schema):
    id = ma.fields.String(required=True)
    agent_id = ma.fields.String(required=True)
    container_id = ma.fields.String(required=True)
    image = ma.fields.Nested(ReportImageSchema, required=True)
    finalized = ma.fields.Boolean(required=True)
    generated_at = ma.fields.DateTime(required=True)
    received_at = ma.fields.DateTime(required=True)


class ReportPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ReportSummarySchema), required=True)
    next = ma.fields.String(allow_none=True, required=True)


class ReportSchema(ReportSummarySchema):
    report = ma.fields.Dict(
        required=True, metadata={"description": "The document as the agent sent it."}
    )


def _summary(row: report_store.ReportSummary) -> dict[str, Any]:
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "container_id": row.container_id,
        "image": {"name": row.image_name, "digest": row.image_digest},
        "finalized": row.finalized,
        "generated_at": row.generated_at,
        "received_at": row.received_at,
    }


@blp.route("", methods=["POST"])
@bulk_body
@require_roles("agent")
@blp.arguments(ReportInSchema)
@blp.response(202, ReportAcceptedSchema)
def submit_report(body: dict[str, Any]) -> dict[str, Any]:
    """Store a container report: it replaces the container's latest; finalized ones are kept."""
    agent_id = current_principal().agent_id
    if not agent_id:
        raise Forbidden("this token is bound to no agent")
    report = report_store.NewReport(
        container_id=body["container_id"],
        image_name=body["image"]["name"],
        image_digest=body["image"]["digest"],
        finalized=body["finalized"],
        generated_at=body["generated_at"],
        # The document as sent (already validated), not marshmallow's typed copy.
        body=request.get_json(),
    )
    state = app_state()
    with state.session_factory.begin() as session:
        stored = report_store.save_report(
            session, agent_id=agent_id, report=report, now=state.clock()
        )
    return {"id": stored.id}


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(ReportQuerySchema, location="query")
@blp.response(200, ReportPageSchema)
def list_reports(query: dict[str, Any]) -> dict[str, Any]:
    """List report summaries, most recently received first; follow ``next``."""
    filters = report_store.ReportFilter(
        agent_id=query["agent_id"],
        container_id=query["container_id"],
        image_digest=query["image_digest"],
        finalized=query["finalized"],
    )
    with app_state().session_factory() as session:
        page = report_store.list_reports(
            session, filters, limit=query["limit"], cursor=query["cursor"]
        )
    return {"items": [_summary(row) for row in page.items], "next": page.next}


@blp.route("/<string:report_id>", methods=["GET"])
@require_roles("admin")
@blp.response(200, ReportSchema)
def get_report(report_id: str) -> dict[str, Any]:
    """One report with the full document."""
    with app_state().session_factory() as session:
        row = report_store.get_report(session, report_id)
    return {**_summary(row), "report": dict(row.body)}
