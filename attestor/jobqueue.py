# SPDX-License-Identifier: Apache-2.0
"""The job plumbing: ``TaskContext``, the ``JobRunner`` protocol and :func:`submit`.

A leaf below the services: it imports no task and no service, so a service
may submit a job, and a task in :mod:`attestor.jobs` may take a
``TaskContext``, without an import cycle. The runners, which call the tasks,
live in :mod:`attestor.jobs.runner`; the tasks call the services, never the
reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings
from attestor.errors import Error
from attestor.store import jobs as job_store

__all__ = ["JobRunner", "TaskContext", "TaskFn", "fail_job", "settle_job", "submit", "utc_now"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TaskContext:
    """What a task may use: settings, database sessions, the clock, progress."""

    job_id: str
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    #: Merge counters such as ``{"done": 3}`` into the job's progress.
    report_progress: Callable[[Mapping[str, Any]], None]


TaskFn = Callable[[Mapping[str, Any], TaskContext], Mapping[str, Any] | None]


def utc_now() -> datetime:
    """The wall clock, as an aware UTC datetime (the default ``clock``)."""
    return datetime.now(UTC)


class JobRunner(Protocol):
    """Runs a job whose row already exists (status ``queued``)."""

    def enqueue(self, kind: str, payload: dict[str, Any], *, job_id: str) -> None:
        """Schedule ``kind`` with ``payload``; results go to the job row ``job_id``.

        Raises:
            InvalidInput: Unknown kind.
            Unavailable: The queue cannot be reached.
        """
        ...


def submit(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    *,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    created_by: str | None = None,
) -> job_store.JobRow:
    """Store a queued job row, commit, then enqueue it; returns the row.

    The row is committed first so that a worker never sees a job id that does
    not exist yet. If enqueueing fails the row is marked failed.

    Raises:
        InvalidInput: Unknown kind.
        Unavailable: The queue cannot be reached.
    """
    # An inline job is owned from its first commit: a crash before enqueue still ends it.
    # In-process runners name themselves (``InlineRunner.owner``); rq jobs have no owner.
    owner = getattr(runner, "owner", None)
    with session_factory.begin() as session:
        job = job_store.create_job(
            session, kind=kind, payload=payload, created_by=created_by, now=now, owner=owner
        )
    try:
        runner.enqueue(kind, payload, job_id=job.id)
    except Error as e:
        fail_job(session_factory, job.id, f"{type(e).__name__}: {e.message}", lambda: now)
        raise
    return job


def fail_job(
    factory: sessionmaker[Session], job_id: str, message: str, clock: Callable[[], datetime]
) -> None:
    """Mark the job failed with ``message`` (unless it already ended)."""
    settle_job(factory, job_id, clock, status="failed", error=message)


def settle_job(
    factory: sessionmaker[Session],
    job_id: str,
    clock: Callable[[], datetime],
    *,
    status: str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record the job's final ``status`` once; a later outcome is logged and dropped."""
    with factory.begin() as session:
        # A job failed meanwhile (reaped as interrupted) keeps its first outcome.
        if not job_store.transition(
            session, job_id, status=status, result=result, error=error, now=clock()
        ):
            log.warning("job %s already ended; its %s outcome is dropped", job_id, status)
