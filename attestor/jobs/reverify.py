# SPDX-License-Identifier: Apache-2.0
"""Scheduling re-verification sweeps (the job itself is :mod:`attestor.jobs.reverify_task`).

A sweep is enqueued after a key or policy revocation (scope ``key`` /
``policy``) and periodically (scope ``all``): on rq through
``Queue.enqueue_in`` (run the worker with ``--with-scheduler``), without Redis
through :class:`SweepTimer`. Either way :func:`submit_periodic_sweep` inserts
the job row only when no periodic sweep is unfinished or younger than 0.9
period, under a lock shared by every process on the database: ``serve
--workers N`` and replicas sweep once a period.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import ConfigError, Error
from attestor.jobqueue import JobRunner, submit, utc_now
from attestor.jobs.worker_state import installed_worker_state, worker_state
from attestor.policy import PolicySet
from attestor.services.revocation import REVERIFY_KIND
from attestor.store import jobs as job_store
from attestor.store import revocations as revocation_store

__all__ = [
    "PERIODIC_JOB_ID",
    "PERIODIC_SCHEDULE",
    "SweepTimer",
    "enqueue_policy_sweeps",
    "periodic_sweep_entry",
    "schedule_periodic_sweep",
    "submit_periodic_sweep",
]

log = logging.getLogger(__name__)

#: Prefix of the scheduled rq job id; the slot number makes one schedule per slot.
PERIODIC_JOB_ID: Final = "attestor-reverify-periodic"
#: ``jobs.schedule`` of periodic sweeps (the rows the once-a-period check reads).
PERIODIC_SCHEDULE: Final = "reverify-periodic"
#: Default period of the sweep.
SWEEP_INTERVAL: Final = timedelta(hours=1)
#: A periodic sweep is submitted when the last one is older than this share of the period.
_MIN_GAP: Final = 0.9


def enqueue_policy_sweeps(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    policies: PolicySet,
    *,
    now: datetime,
) -> list[str]:
    """After (re)loading policies: one ``policy`` sweep per policy whose version changed.

    A policy changed when ``valid`` attestations record another version of a
    policy id that is loaded now. Returns the job ids; a queue outage is logged
    (the periodic sweep covers it).
    """

    with session_factory() as session:
        in_use = revocation_store.policy_versions_in_use(session)
    loaded = {p.id: p.version for p in policies.policies}
    changed = sorted({pid for pid, version in in_use if pid in loaded and loaded[pid] != version})
    jobs: list[str] = []
    for policy_id in changed:
        try:
            job = submit(
                session_factory,
                runner,
                kind=REVERIFY_KIND,
                payload={"scope": "policy", "policy_id": policy_id},
                now=now,
            )
        except Error as e:
            log.warning("policy sweep for %s not enqueued: %s", policy_id, e)
            continue
        jobs.append(job.id)
    return jobs


def submit_periodic_sweep(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    *,
    now: datetime,
    interval: timedelta,
) -> str | None:
    """Submit the periodic ``all`` sweep unless another process did this period.

    Returns the job id, or None when skipped (a periodic sweep is unfinished or
    younger than 0.9 ``interval``) or when the queue is unreachable (logged; the
    row is marked failed and the next period tries again).
    """

    payload = {"scope": "all"}
    with session_factory.begin() as session:
        job = job_store.create_scheduled_job(
            session,
            schedule=PERIODIC_SCHEDULE,
            kind=REVERIFY_KIND,
            payload=payload,
            now=now,
            min_gap=interval * _MIN_GAP,
            # In-process runners name themselves (``InlineRunner.owner``); rq jobs have no owner.
            owner=getattr(runner, "owner", None),
        )
    if job is None:
        return None
    try:
        runner.enqueue(REVERIFY_KIND, payload, job_id=job.id)
    except Error as e:
        log.warning("periodic re-verification sweep not enqueued: %s", e)
        with session_factory.begin() as session:
            job_store.update_job(
                session, job.id, status="failed", error=f"{type(e).__name__}: {e.message}", now=now
            )
        return None
    return job.id


class SweepTimer:
    """The periodic sweep without Redis: a daemon thread that submits one job per interval.

    Every server process runs one; it checks ten times per interval and
    :func:`submit_periodic_sweep` lets one submission through per interval
    across them all (and a restart does not push the next sweep back).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        runner: JobRunner,
        *,
        clock: Callable[[], datetime],
        interval: timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._factory = session_factory
        self._runner = runner
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Ids of the jobs this timer submitted (for tests and logs).
        self.submitted: list[str] = []

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="attestor-reverify-timer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval.total_seconds() / 10):
            self.tick()

    def tick(self) -> str | None:
        """Submit the sweep if it is due; database errors are logged (the next tick retries)."""
        try:
            job_id = submit_periodic_sweep(
                self._factory, self._runner, now=self._clock(), interval=self._interval
            )
        except (Error, SQLAlchemyError) as e:
            log.warning("periodic re-verification sweep not submitted: %s", e)
            return None
        if job_id is not None:
            self.submitted.append(job_id)
        return job_id

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def schedule_periodic_sweep(queue: Any, *, interval: timedelta = SWEEP_INTERVAL) -> None:
    """Schedule the next periodic sweep on an rq ``Queue`` (needs ``--with-scheduler``).

    The job id names the time slot it runs in, so however often this is called
    (every server start, every run) one sweep is pending per slot.

    Raises:
        Unavailable: Redis cannot be reached.
    """
    from redis.exceptions import RedisError

    from attestor.errors import Unavailable

    seconds = max(1, int(interval.total_seconds()))
    slot = (int(time.time()) + seconds) // seconds
    try:
        queue.enqueue_in(
            interval,
            periodic_sweep_entry,
            seconds,
            job_id=f"{PERIODIC_JOB_ID}-{seconds}-{slot}",
            job_timeout=600,
            result_ttl=0,
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as e:
        raise Unavailable(f"job queue unreachable: {type(e).__name__}") from e


def periodic_sweep_entry(interval_s: int) -> None:
    """What rq's scheduler runs: submit a sweep job, then schedule the next one.

    Raises:
        ConfigError: ``REDIS_URL`` is not set, so there is no rq queue to use.
        Unavailable: Redis is unreachable.
    """
    from attestor.config import load_settings
    from attestor.jobs.runner import RQRunner

    installed = installed_worker_state()
    settings = installed.settings if installed is not None else load_settings(os.environ)
    if settings.redis_url is None:
        raise ConfigError("the periodic sweep runs on rq, which needs REDIS_URL")
    with worker_state(settings) as state:
        runner = RQRunner(settings.redis_url)
        submit_periodic_sweep(
            state.session_factory,
            runner,
            now=utc_now(),
            interval=timedelta(seconds=interval_s),
        )
        schedule_periodic_sweep(runner.queue, interval=timedelta(seconds=interval_s))
