# SPDX-License-Identifier: Apache-2.0
"""Job rows: the durable state of background work; the runner only carries ids."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attestor.errors import InvalidInput, NotFound
from attestor.store.models import JOB_STATUSES, JobModel

__all__ = ["JOB_STATUSES", "JobRow", "count_jobs", "create_job", "get_job", "update_job"]

_EMPTY_PROGRESS = {"total": 0, "done": 0, "verified": 0, "rejected": 0}
_TERMINAL = frozenset({"finished", "failed"})


@dataclass(frozen=True, kw_only=True)
class JobRow:
    """A job as stored."""

    id: str
    kind: str
    status: str
    payload: Mapping[str, Any]
    progress: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _row(m: JobModel) -> JobRow:
    return JobRow(
        id=m.id,
        kind=m.kind,
        status=m.status,
        payload=dict(m.payload),
        progress=dict(m.progress),
        result=dict(m.result) if m.result is not None else None,
        error=m.error,
        created_by=m.created_by,
        created_at=m.created_at,
        started_at=m.started_at,
        finished_at=m.finished_at,
    )


def create_job(
    session: Session,
    *,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    created_by: str | None = None,
    job_id: str | None = None,
) -> JobRow:
    """Insert a queued job; the caller enqueues it on a runner after commit."""
    model = JobModel(
        id=job_id or str(uuid.uuid4()),
        kind=kind,
        status="queued",
        payload=dict(payload),
        progress=dict(_EMPTY_PROGRESS),
        created_by=created_by,
        created_at=now,
    )
    session.add(model)
    session.flush()
    return _row(model)


def get_job(session: Session, job_id: str) -> JobRow:
    """Return one job.

    Raises:
        NotFound: No job has this id.
    """
    model = session.get(JobModel, job_id)
    if model is None:
        raise NotFound(f"no job with id {job_id!r}")
    return _row(model)


def update_job(
    session: Session,
    job_id: str,
    *,
    now: datetime,
    status: str | None = None,
    progress: Mapping[str, Any] | None = None,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> JobRow:
    """Change a job's status, progress, result or error.

    ``started_at`` is set on the first move to ``running`` and ``finished_at``
    on ``finished`` or ``failed``. A progress mapping is merged into the stored one.

    Raises:
        NotFound: No job has this id.
        InvalidInput: Unknown status, or a finished job would change status.
    """
    model = session.get(JobModel, job_id)
    if model is None:
        raise NotFound(f"no job with id {job_id!r}")
    if status is not None:
        if status not in JOB_STATUSES:
            raise InvalidInput(
                f"job status must be one of {', '.join(JOB_STATUSES)}, got {status!r}"
            )
        if model.status in _TERMINAL and status != model.status:
            raise InvalidInput(f"job {job_id} is already {model.status}")
        model.status = status
        if status == "running" and model.started_at is None:
            model.started_at = now
        if status in _TERMINAL:
            model.finished_at = now
    if progress is not None:
        # Reassign, don't mutate: the JSON column does not track in-place changes.
        model.progress = {**model.progress, **progress}
    if result is not None:
        model.result = dict(result)
    if error is not None:
        model.error = error
    session.flush()
    return _row(model)


def count_jobs(session: Session, *, statuses: tuple[str, ...] = ("queued", "running")) -> int:
    """Number of jobs in the given statuses (the queue depth by default)."""
    query = select(func.count()).select_from(JobModel).where(JobModel.status.in_(statuses))
    return int(session.scalar(query) or 0)
