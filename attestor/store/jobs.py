# SPDX-License-Identifier: Apache-2.0
"""Job rows: the durable state of background work; the runner only carries ids.

Jobs run in-process (no Redis) carry the ``owner`` id of the runner holding
them and a ``heartbeat_at`` it refreshes; :func:`fail_abandoned` fails those
whose owner stopped beating (a crash, a SIGKILL, a recycled gunicorn worker).
rq jobs have no owner and are left to rq. Periodic jobs carry a ``schedule``
name; :func:`create_scheduled_job` inserts at most one per period across every
process sharing the database.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from attestor.errors import InvalidInput, NotFound
from attestor.store.models import JOB_STATUSES, JobModel

__all__ = [
    "ACTIVE_STATUSES",
    "INTERRUPTED",
    "JOB_STATUSES",
    "STALE_BEATS",
    "JobRow",
    "beat",
    "claim_job",
    "count_jobs",
    "create_job",
    "create_scheduled_job",
    "fail_abandoned",
    "get_job",
    "transition",
    "update_job",
]

_EMPTY_PROGRESS = {"total": 0, "done": 0, "verified": 0, "rejected": 0}
_TERMINAL = frozenset({"finished", "failed"})
#: Statuses of a job that some process still has to finish.
ACTIVE_STATUSES = ("queued", "running")
#: Heartbeat periods after which an inline job's process is taken for dead.
STALE_BEATS: Final = 3
#: The ``error`` of a job whose process stopped (crash, kill, restart) before it finished.
INTERRUPTED: Final = (
    "interrupted: the server process running this job stopped before it finished; submit it again"
)


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
    #: In-process runner holding the job; ``None`` for rq jobs. Not part of the API.
    owner: str | None = None
    heartbeat_at: datetime | None = None
    schedule: str | None = None

    @property
    def terminal(self) -> bool:
        """The job is finished or failed and can no longer change status."""
        return self.status in _TERMINAL


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
        owner=m.owner,
        heartbeat_at=m.heartbeat_at,
        schedule=m.schedule,
    )


def create_job(
    session: Session,
    *,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    created_by: str | None = None,
    job_id: str | None = None,
    owner: str | None = None,
    schedule: str | None = None,
) -> JobRow:
    """Insert a queued job; the caller enqueues it on a runner after commit.

    ``owner`` (in-process runners) starts the job's heartbeat at ``now``.
    """
    model = JobModel(
        id=job_id or str(uuid.uuid4()),
        kind=kind,
        status="queued",
        payload=dict(payload),
        progress=dict(_EMPTY_PROGRESS),
        created_by=created_by,
        created_at=now,
        owner=owner,
        heartbeat_at=now if owner is not None else None,
        schedule=schedule,
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


def transition(
    session: Session,
    job_id: str,
    *,
    status: str,
    now: datetime,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Move a job that has not ended to ``status`` in one conditional ``UPDATE``.

    Returns False, changing nothing, when the job had already ended (a reaper
    failed it as interrupted). A read-then-write would let a reaper's commit in
    between be overwritten: the job would flip from ``failed`` back to
    ``running`` and then ``finished``.

    Raises:
        InvalidInput: Unknown status.
    """
    if status not in JOB_STATUSES:
        raise InvalidInput(f"job status must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
    values: dict[str, Any] = {"status": status}
    if status == "running":
        values["started_at"] = func.coalesce(JobModel.started_at, now)
    if status in _TERMINAL:
        values["finished_at"] = now
    if result is not None:
        values["result"] = dict(result)
    if error is not None:
        values["error"] = error
    statement = (
        update(JobModel)
        .where(JobModel.id == job_id, JobModel.status.not_in(_TERMINAL))
        .values(**values)
    )
    changed = session.connection().execute(statement).rowcount == 1
    session.expire_all()  # models loaded earlier in this session are stale now
    return changed


def count_jobs(session: Session, *, statuses: tuple[str, ...] = ("queued", "running")) -> int:
    """Number of jobs in the given statuses (the queue depth by default)."""
    query = select(func.count()).select_from(JobModel).where(JobModel.status.in_(statuses))
    return int(session.scalar(query) or 0)


def claim_job(session: Session, job_id: str, *, owner: str, now: datetime) -> bool:
    """Record that in-process runner ``owner`` holds ``job_id``; starts its heartbeat.

    Returns False when the job is no longer queued or running.
    """
    statement = (
        update(JobModel)
        .where(JobModel.id == job_id, JobModel.status.in_(ACTIVE_STATUSES))
        .values(owner=owner, heartbeat_at=now)
    )
    return bool(session.connection().execute(statement).rowcount)


def beat(session: Session, *, owner: str, now: datetime) -> int:
    """Refresh the heartbeat of every unfinished job ``owner`` holds; returns how many."""
    statement = (
        update(JobModel)
        .where(JobModel.owner == owner, JobModel.status.in_(ACTIVE_STATUSES))
        .values(heartbeat_at=now)
    )
    return int(session.connection().execute(statement).rowcount)


def fail_abandoned(
    session: Session,
    *,
    heartbeat_s: float,
    now: datetime,
    exclude_owner: str | None = None,
) -> list[str]:
    """Fail, as :data:`INTERRUPTED`, the unfinished in-process jobs whose owner stopped beating.

    A job is abandoned when its heartbeat is older than ``STALE_BEATS`` periods
    of ``heartbeat_s``. Jobs without an owner (rq jobs, rows older than
    migration 0006) are never touched. One ``UPDATE`` with the staleness in
    its ``WHERE``: on PostgreSQL a concurrent heartbeat or reaper makes the row
    fail the re-check, so a job is failed once and never while its owner
    beats. Returns the failed job ids.
    """
    stale_before = now - timedelta(seconds=STALE_BEATS * heartbeat_s)
    conditions = [
        JobModel.owner.is_not(None),
        JobModel.status.in_(ACTIVE_STATUSES),
        JobModel.heartbeat_at < stale_before,
    ]
    if exclude_owner is not None:
        conditions.append(JobModel.owner != exclude_owner)
    statement = (
        update(JobModel)
        .where(*conditions)
        .values(status="failed", error=INTERRUPTED, finished_at=now)
        .returning(JobModel.id)
    )
    return sorted(str(job_id) for job_id in session.connection().execute(statement).scalars())


def create_scheduled_job(
    session: Session,
    *,
    schedule: str,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    min_gap: timedelta,
    stuck_after: timedelta = timedelta(hours=24),
    owner: str | None = None,
) -> JobRow | None:
    """Insert a job of ``schedule`` unless the latest is younger than ``min_gap`` or unfinished.

    An unfinished job older than ``stuck_after`` no longer holds new ones off:
    an rq job lost with Redis's data would otherwise stop the schedule for good.
    Call it first thing in its own write transaction: the check and the insert
    run under a lock that serializes every submitter of ``schedule`` (an
    advisory transaction lock on PostgreSQL, the database write lock taken up
    front on SQLite), so racing processes and replicas insert one job.
    Returns None when the job was skipped.
    """
    _lock_schedule(session, schedule)
    latest = session.scalar(
        select(JobModel)
        .where(JobModel.schedule == schedule)
        .order_by(JobModel.created_at.desc())
        .limit(1)
    )
    if latest is not None and (
        latest.created_at > now - min_gap
        or (latest.status in ACTIVE_STATUSES and latest.created_at > now - stuck_after)
    ):
        return None
    return create_job(session, kind=kind, payload=payload, now=now, owner=owner, schedule=schedule)


def _lock_schedule(session: Session, schedule: str) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # A stable 63-bit key per schedule name; released at commit or rollback.
        key = int.from_bytes(hashlib.sha256(f"attestor:{schedule}".encode()).digest()[:8]) >> 1
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        return
    dbapi = connection.connection.dbapi_connection
    # pysqlite begins lazily, at the first write: a plain read first would let
    # two processes both see "no recent job". BEGIN IMMEDIATE takes the write
    # lock now (waiting up to the busy timeout); inside a write it is held already.
    if dbapi is not None and not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
