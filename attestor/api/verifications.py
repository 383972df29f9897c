# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/verifications`` (bulk submit) and ``/v1/jobs/{id}/results`` (its results).

The body is read as plain JSON rather than through a marshmallow schema: a
10,000-item body would be walked twice, and the service checks the shape once.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.api.limits import bulk_body
from attestor.errors import InvalidInput, NotFound
from attestor.jobs.runner import RQRunner
from attestor.jobs.verification import InlineDispatcher, RQDispatcher
from attestor.services import bulk_verify
from attestor.services.bulk_verify import BulkLimits, ChunkDispatcher
from attestor.store import jobs as job_store
from attestor.store import verifications as results_store

__all__ = ["blp"]

blp = Blueprint(
    "verifications", __name__, url_prefix="/v1", description="Bulk verification of attestations."
)

MAX_PAGE = 1000


class JobRefSchema(ma.Schema):
    id = ma.fields.String(required=True)
    url = ma.fields.String(required=True)


class SubmittedSchema(ma.Schema):
    job = ma.fields.Nested(JobRefSchema, required=True)


class PageArgsSchema(ma.Schema):
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0))
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=MAX_PAGE))


class ResultSchema(ma.Schema):
    index = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["verified", "rejected"]})
    reason = ma.fields.String(allow_none=True)
    revoked = ma.fields.Boolean(required=True)
    attestation_id = ma.fields.String(allow_none=True)


class ResultsPageSchema(ma.Schema):
    job_id = ma.fields.String(required=True)
    total = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
    limit = ma.fields.Integer(required=True)
    items = ma.fields.List(ma.fields.Nested(ResultSchema), required=True)
    next = ma.fields.String(allow_none=True)


def _limits() -> BulkLimits:
    settings = app_state().settings
    return BulkLimits(
        max_items=settings.max_bulk_items,
        chunk_size=settings.bulk_chunk_size,
        chunk_timeout_s=settings.bulk_chunk_timeout_s,
    )


def _dispatcher(limits: BulkLimits) -> ChunkDispatcher:
    runner = app_state().runner
    if isinstance(runner, RQRunner):
        return RQDispatcher(runner.queue, limits)
    return InlineDispatcher(runner)


@blp.route("/verifications", methods=["POST"])
@require_roles("admin", "pipeline")
@bulk_body
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
)
@blp.response(202, SubmittedSchema)
def submit_verifications() -> dict[str, Any]:
    """Verify up to ``max_items`` envelopes or bundles in the background."""
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("the body must be JSON (Content-Type: application/json)")
    limits = _limits()
    items = bulk_verify.parse_request(body, limits=limits)
    state = app_state()
    job = bulk_verify.submit(
        state.session_factory,
        _dispatcher(limits),
        items,
        limits=limits,
        now=state.clock(),
        created_by=current_principal().token_id,
    )
    return {"job": {"id": job.id, "url": f"/v1/jobs/{job.id}"}}


@blp.route("/jobs/<string:job_id>/results", methods=["GET"])
@require_roles("admin", "pipeline")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, ResultsPageSchema)
def job_results(args: dict[str, int], job_id: str) -> dict[str, Any]:
    """A page of a verification job's per-item results, in submission order."""
    principal = current_principal()
    offset, limit = args["offset"], args["limit"]
    with app_state().session_factory() as session:
        job = job_store.get_job(session, job_id)
        if job.kind != bulk_verify.JOB_KIND or (
            principal.role != "admin" and job.created_by != principal.token_id
        ):
            # 404, not 403: do not reveal that someone else's job exists.
            raise NotFound(f"no verification job with id {job_id!r}")
        rows = results_store.list_results(session, job_id, offset=offset, limit=limit)
    total = int(job.progress.get("total", 0))
    following = offset + limit
    return {
        "job_id": job_id,
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": [
            {
                "index": r.index,
                "status": r.status,
                "reason": r.reason,
                "revoked": r.revoked,
                "attestation_id": r.attestation_id,
            }
            for r in rows
        ],
        "next": (
            f"{bulk_verify.results_url(job_id)}?offset={following}&limit={limit}"
            if following < total
            else None
        ),
    }
