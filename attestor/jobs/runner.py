# SPDX-License-Identifier: Apache-2.0
"""Job runners: ``InlineRunner`` (threads, no Redis) and ``RQRunner`` (rq on Redis).

Both implement ``JobRunner``. The job row in the database is the source of
truth; a runner only carries ``(kind, payload, job_id)`` and calls
:func:`execute`, which marks the row running, calls the task and stores its
result or error. rq uses ``JSONSerializer``, never pickle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, load_settings
from attestor.errors import Error, InvalidInput, Unavailable
from attestor.jobs.tasks import TASKS, TaskContext, TaskFn
from attestor.store import jobs as job_store

__all__ = [
    "InlineRunner",
    "JobRunner",
    "RQRunner",
    "execute",
    "rq_entry",
    "submit",
    "utc_now",
]

log = logging.getLogger(__name__)

QUEUE_NAME = "attestor"
JOB_TIMEOUT_S = 3600
RESULT_TTL_S = 24 * 3600
FAILURE_TTL_S = 7 * 24 * 3600
RETRY_MAX = 2
RETRY_INTERVALS_S = [10, 60]


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
    with session_factory.begin() as session:
        job = job_store.create_job(
            session, kind=kind, payload=payload, created_by=created_by, now=now
        )
    try:
        runner.enqueue(kind, payload, job_id=job.id)
    except Error as e:
        _fail(session_factory, job.id, f"{type(e).__name__}: {e.message}", lambda: now)
        raise
    return job


def execute(
    kind: str,
    payload: Mapping[str, Any],
    *,
    job_id: str,
    settings: Settings,
    session_factory: sessionmaker[Session],
    tasks: Mapping[str, TaskFn] = TASKS,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Run one job and record the outcome in its row; never raises for task errors."""
    with session_factory.begin() as session:
        job_store.update_job(session, job_id, status="running", now=clock())

    def report(progress: Mapping[str, Any]) -> None:
        with session_factory.begin() as s:
            job_store.update_job(s, job_id, progress=progress, now=clock())

    context = TaskContext(
        job_id=job_id,
        settings=settings,
        session_factory=session_factory,
        clock=clock,
        report_progress=report,
    )
    try:
        task = tasks[kind]
        result = task(payload, context)
    except Error as e:
        _fail(session_factory, job_id, f"{type(e).__name__}: {e.message}", clock)
        return
    except Exception:
        # A bug in a task must not kill the worker thread; the row says it failed.
        log.exception("job %s (%s) crashed", job_id, kind)
        _fail(session_factory, job_id, "internal error", clock)
        return
    with session_factory.begin() as session:
        job_store.update_job(
            session, job_id, status="finished", result=dict(result or {}), now=clock()
        )


def _fail(
    factory: sessionmaker[Session], job_id: str, message: str, clock: Callable[[], datetime]
) -> None:
    with factory.begin() as session:
        job_store.update_job(session, job_id, status="failed", error=message, now=clock())


class InlineRunner:
    """Runs jobs in this process on a small thread pool; used when REDIS_URL is unset."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        tasks: Mapping[str, TaskFn] = TASKS,
        clock: Callable[[], datetime] = utc_now,
        max_workers: int = 2,
    ) -> None:
        self._settings = settings
        self._factory = session_factory
        self._tasks = tasks
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="attestor-job")
        self._futures: list[Future[None]] = []

    def enqueue(self, kind: str, payload: dict[str, Any], *, job_id: str) -> None:
        """Schedule the job on the pool.

        Raises:
            InvalidInput: Unknown kind.
        """
        if kind not in self._tasks:
            raise InvalidInput(f"unknown job kind {kind!r}")
        future = self._pool.submit(
            execute,
            kind,
            payload,
            job_id=job_id,
            settings=self._settings,
            session_factory=self._factory,
            tasks=self._tasks,
            clock=self._clock,
        )
        self._futures = [f for f in self._futures if not f.done()] + [future]

    def wait(self, timeout: float | None = None) -> None:
        """Block until every job enqueued so far has finished (for tests and shutdown)."""
        for future in list(self._futures):
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        """Finish running jobs and stop the threads."""
        self._pool.shutdown(wait=True)


class RQRunner:
    """Enqueues jobs on an rq queue in Redis; ``attestor worker`` runs them."""

    def __init__(
        self, redis_url: str, *, tasks: Mapping[str, TaskFn] = TASKS, queue_name: str = QUEUE_NAME
    ) -> None:
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        # No I/O here: redis-py connects lazily on the first command.
        self._connection = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._queue = Queue(queue_name, connection=self._connection, serializer=JSONSerializer)
        self._tasks = tasks

    @property
    def queue(self) -> Any:
        """The rq ``Queue`` (for workers and tests)."""
        return self._queue

    def enqueue(self, kind: str, payload: dict[str, Any], *, job_id: str) -> None:
        """Put the job on the queue.

        Raises:
            InvalidInput: Unknown kind.
            Unavailable: Redis cannot be reached.
        """
        from redis.exceptions import RedisError
        from rq import Retry

        if kind not in self._tasks:
            raise InvalidInput(f"unknown job kind {kind!r}")
        try:
            self._queue.enqueue(
                rq_entry,
                kind,
                payload,
                job_id,
                job_id=job_id,
                job_timeout=JOB_TIMEOUT_S,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                retry=Retry(max=RETRY_MAX, interval=RETRY_INTERVALS_S),
            )
        except RedisError as e:
            raise Unavailable(f"job queue unreachable: {type(e).__name__}") from e


def rq_entry(kind: str, payload: dict[str, Any], job_id: str) -> None:
    """Entry point an rq worker calls; builds its context from the environment."""
    from attestor.store.db import make_engine, make_session_factory

    settings = load_settings(os.environ)
    engine = make_engine(settings.database_url)
    try:
        execute(
            kind,
            payload,
            job_id=job_id,
            settings=settings,
            session_factory=make_session_factory(engine),
        )
    finally:
        engine.dispose()
