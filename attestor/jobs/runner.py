# SPDX-License-Identifier: Apache-2.0
"""Job runners: ``InlineRunner`` (threads, no Redis) and ``RQRunner`` (rq on Redis).

Both implement ``JobRunner``. The job row in the database is the source of
truth; a runner only carries ``(kind, payload, job_id)`` and calls
:func:`execute`, which marks the row running, calls the task and stores its
result or error. rq uses ``JSONSerializer``, never pickle.

A job held in a process's thread pool dies with the process. So the
``InlineRunner`` writes its owner id on the rows it holds and refreshes their
heartbeat every ``inline_heartbeat_s``; every inline runner (and start-up)
fails the jobs whose heartbeat is older than ``STALE_BEATS`` periods (see
:func:`attestor.store.jobs.fail_abandoned`). A job is not failed while its
process keeps beating: the beat runs on its own thread, not the job's.
Replicas sharing PostgreSQL must keep their clocks within a period or so of
each other (NTP): heartbeats are their wall-clock times.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings
from attestor.errors import Error, InvalidInput, Unavailable
from attestor.jobqueue import TaskContext, TaskFn, fail_job, settle_job, utc_now
from attestor.jobs.tasks import TASKS, process_tasks
from attestor.jobs.worker_state import SharedIssueState, build_issue_state, worker_state
from attestor.store import jobs as job_store

__all__ = [
    "InlineRunner",
    "RQRunner",
    "execute",
    "reap_abandoned",
    "rq_entry",
]

log = logging.getLogger(__name__)

QUEUE_NAME = "attestor"
JOB_TIMEOUT_S = 3600
RESULT_TTL_S = 24 * 3600
FAILURE_TTL_S = 7 * 24 * 3600
RETRY_MAX = 2
RETRY_INTERVALS_S = [10, 60]
#: Jobs an ``InlineRunner`` holds (running or waiting) before it answers Unavailable.
INLINE_MAX_PENDING = 256


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
        if not job_store.transition(session, job_id, status="running", now=clock()):
            # Failed while it waited (interrupted by a reaper): nobody polls for it now.
            log.warning("job %s already ended (or is gone) before it started; not run", job_id)
            return

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
        fail_job(session_factory, job_id, f"{type(e).__name__}: {e.message}", clock)
        return
    except Exception:
        # A bug in a task must not kill the worker thread; the row says it failed.
        log.exception("job %s (%s) crashed", job_id, kind)
        fail_job(session_factory, job_id, "internal error", clock)
        return
    settle_job(session_factory, job_id, clock, status="finished", result=dict(result or {}))


def reap_abandoned(
    session_factory: sessionmaker[Session],
    *,
    heartbeat_s: float,
    now: datetime,
    exclude_owner: str | None = None,
) -> list[str]:
    """Fail the inline jobs whose process stopped beating; returns their ids.

    See :func:`attestor.store.jobs.fail_abandoned`; rq jobs (no owner) are left to rq.
    """
    with session_factory.begin() as session:
        failed = job_store.fail_abandoned(
            session, heartbeat_s=heartbeat_s, now=now, exclude_owner=exclude_owner
        )
    if failed:
        log.warning("failed %d interrupted job(s): %s", len(failed), ", ".join(failed))
    return failed


class InlineRunner:
    """Runs jobs in this process on a small thread pool; used when REDIS_URL is unset.

    A maintenance thread refreshes the heartbeat of the jobs this runner holds
    and fails other processes' abandoned jobs, every ``settings.inline_heartbeat_s``.
    :meth:`start` runs it for the life of the runner (the server); otherwise it
    runs only while jobs are pending here.

    Both the threads (``max_workers``) and the backlog (``max_pending``) are
    bounded: layer scans deferred from the API run here, and a client that
    submits faster than they finish gets 503 rather than an ever longer queue.

    Its ``issue`` jobs share one :class:`SharedIssueState` (registry client,
    policies, signers), built by :meth:`start` or else by the first of them.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        tasks: Mapping[str, TaskFn] | None = None,
        issue_state: SharedIssueState | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_workers: int = 2,
        max_pending: int = INLINE_MAX_PENDING,
    ) -> None:
        """Set up the pool; no thread starts and nothing is built yet.

        Args:
            settings: the process's settings.
            session_factory: the database of the job rows.
            tasks: the job kinds it runs; default, ``process_tasks(issue_state)``.
            issue_state: what its ``issue`` jobs share; default, one of its own.
            clock: the time written on the rows.
            max_workers: threads that run jobs.
            max_pending: jobs held (running or waiting) before Unavailable.
        """
        self._settings = settings
        self._factory = session_factory
        self.issue_state = (
            issue_state
            if issue_state is not None
            else SharedIssueState(
                settings,
                build=functools.partial(build_issue_state, session_factory=session_factory),
            )
        )
        self._tasks = tasks if tasks is not None else process_tasks(self.issue_state)
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="attestor-job")
        self._futures: list[Future[None]] = []
        self._max_pending = max_pending
        #: Written on the rows this runner holds; unique per process and runner.
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keep_running = False

    def enqueue(self, kind: str, payload: dict[str, Any], *, job_id: str) -> None:
        """Schedule the job on the pool.

        Raises:
            InvalidInput: Unknown kind.
            Unavailable: ``max_pending`` jobs are already running or waiting.
        """
        if kind not in self._tasks:
            raise InvalidInput(f"unknown job kind {kind!r}")
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            if len(self._futures) >= self._max_pending:
                raise Unavailable(
                    f"{len(self._futures)} jobs are already waiting in this process",
                    retry_after=30,
                )
        # Rows created by other code (bulk verification) are claimed here.
        with self._factory.begin() as session:
            job_store.claim_job(session, job_id, owner=self.owner, now=self._clock())
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
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()] + [future]
        self._ensure_thread()

    def start(self) -> None:
        """Build the issue state, then run the heartbeat and reaper thread until :meth:`shutdown`.

        Idempotent.

        Raises:
            ConfigError: the policies, the credentials file or keyless signing
                cannot be loaded (see :func:`attestor.jobs.worker_state.build_issue_state`).
        """
        self.issue_state.get()
        with self._lock:
            self._keep_running = True
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._maintain, name="attestor-job-heartbeat", daemon=True
                )
                self._thread.start()

    def _maintain(self) -> None:
        period = float(self._settings.inline_heartbeat_s)
        while not self._stop.wait(period):
            with self._lock:
                if not self._keep_running and all(f.done() for f in self._futures):
                    self._thread = None
                    return
            self.maintain_once()

    def maintain_once(self) -> None:
        """One heartbeat and one reaper pass; database errors are logged, not raised."""
        try:
            with self._factory.begin() as session:
                job_store.beat(session, owner=self.owner, now=self._clock())
            reap_abandoned(
                self._factory,
                heartbeat_s=self._settings.inline_heartbeat_s,
                now=self._clock(),
                exclude_owner=self.owner,
            )
        except (Error, SQLAlchemyError) as e:
            # The next period retries; STALE_BEATS periods leave room for a few misses.
            log.warning("job heartbeat failed: %s", e)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every job enqueued so far has finished (for tests and shutdown)."""
        with self._lock:
            futures = list(self._futures)
        for future in futures:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        """Finish running jobs and stop the threads."""
        self._pool.shutdown(wait=True)
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()


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
    """Entry point an rq worker calls, with the worker process's state (:mod:`.worker_state`)."""
    with worker_state() as state:
        execute(
            kind,
            payload,
            job_id=job_id,
            settings=state.settings,
            session_factory=state.session_factory,
            tasks=process_tasks(state.issue),
        )
