# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/jobs``: the status of background jobs."""

from __future__ import annotations

import marshmallow as ma

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.errors import NotFound
from attestor.services import bulk_verify
from attestor.store import jobs as job_store

__all__ = ["JobSchema", "blp"]

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Background jobs.")


class ProgressSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    total = ma.fields.Integer()
    done = ma.fields.Integer()
    verified = ma.fields.Integer()
    rejected = ma.fields.Integer()


class JobSchema(ma.Schema):
    id = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": list(job_store.JOB_STATUSES)})
    progress = ma.fields.Nested(ProgressSchema, required=True)
    result = ma.fields.Dict(allow_none=True)
    error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    results_url = ma.fields.Method(
        "_results_url",
        allow_none=True,
        metadata={"type": "string", "description": "Per-item results; verify jobs only."},
    )

    def _results_url(self, job: job_store.JobRow) -> str | None:
        return bulk_verify.results_url(job.id) if job.kind == bulk_verify.JOB_KIND else None


@blp.route("/<string:job_id>", methods=["GET"])
@require_roles("admin", "pipeline", "agent")
@blp.response(200, JobSchema)
def get_job(job_id: str) -> job_store.JobRow:
    """A job's status, progress and result; callers other than admins see only their own."""
    principal = current_principal()
    with app_state().session_factory() as session:
        job = job_store.get_job(session, job_id)
    if principal.role != "admin" and job.created_by != principal.token_id:
        # 404, not 403: do not reveal that someone else's job exists.
        raise NotFound(f"no job with id {job_id!r}")
    return job
