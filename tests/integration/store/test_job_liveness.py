# SPDX-License-Identifier: Apache-2.0
"""In-process job ownership: heartbeats, the reaper, and once-a-period scheduled jobs.

Runs on SQLite and on the harness PostgreSQL (``db_engine``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from attestor.config import load_settings
from attestor.jobqueue import TaskContext, submit, utc_now
from attestor.jobs.runner import InlineRunner, reap_abandoned
from attestor.store import jobs
from attestor.store.db import make_session_factory

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HEARTBEAT_S = 10


def _job(engine: Engine, **kw: Any) -> str:
    with make_session_factory(engine).begin() as s:
        return jobs.create_job(s, kind="echo", payload={}, **kw).id


def _get(engine: Engine, job_id: str) -> jobs.JobRow:
    with make_session_factory(engine)() as s:
        return jobs.get_job(s, job_id)


def test_reaper_fails_only_stale_inline_jobs(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    old = NOW - timedelta(seconds=3 * HEARTBEAT_S + 1)
    dead_queued = _job(db_engine, now=old, owner="host:1:dead")
    dead_running = _job(db_engine, now=old, owner="host:1:dead")
    with factory.begin() as s:
        jobs.update_job(s, dead_running, status="running", now=old)
    fresh = _job(db_engine, now=NOW - timedelta(seconds=HEARTBEAT_S), owner="host:2:alive")
    rq_job = _job(db_engine, now=old)  # no owner: rq's own abandoned-job handling applies
    finished = _job(db_engine, now=old, owner="host:1:dead")
    with factory.begin() as s:
        jobs.update_job(s, finished, status="finished", result={"ok": True}, now=old)
    mine = _job(db_engine, now=old, owner="host:3:me")

    failed = reap_abandoned(factory, heartbeat_s=HEARTBEAT_S, now=NOW, exclude_owner="host:3:me")

    assert failed == sorted([dead_queued, dead_running])
    for job_id in failed:
        row = _get(db_engine, job_id)
        assert row.status == "failed"
        assert row.error == jobs.INTERRUPTED
        assert row.error.startswith("interrupted: the server process running this job stopped")
        assert row.finished_at == NOW
    assert _get(db_engine, fresh).status == "queued"
    assert _get(db_engine, rq_job).status == "queued"
    assert _get(db_engine, finished).status == "finished"
    assert _get(db_engine, mine).status == "queued"
    # A second reaper (another process) finds nothing left to fail.
    assert reap_abandoned(factory, heartbeat_s=HEARTBEAT_S, now=NOW) == [mine]


def test_heartbeat_keeps_own_active_jobs_alive(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    old = NOW - timedelta(hours=1)
    queued = _job(db_engine, now=old, owner="a")
    claimed = _job(db_engine, now=old)
    other = _job(db_engine, now=old, owner="b")
    done = _job(db_engine, now=old, owner="a")
    with factory.begin() as s:
        assert jobs.claim_job(s, claimed, owner="a", now=old)
        jobs.update_job(s, done, status="failed", error="x", now=old)
        assert not jobs.claim_job(s, done, owner="a", now=NOW)
        assert jobs.beat(s, owner="a", now=NOW) == 2
    assert _get(db_engine, queued).heartbeat_at == NOW
    assert _get(db_engine, claimed).owner == "a"
    assert _get(db_engine, done).heartbeat_at == old
    assert reap_abandoned(factory, heartbeat_s=HEARTBEAT_S, now=NOW) == [other]


def _slow_task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    time.sleep(float(payload["seconds"]))
    return {"slept": payload["seconds"]}


def test_a_job_running_in_a_live_runner_is_never_reaped(db_engine: Engine, tmp_path: Path) -> None:
    # Two runners on one database stand for two processes; the job outlives
    # several stale thresholds (3 x 1 s) while the other runner reaps.
    factory = make_session_factory(db_engine)
    settings = load_settings(
        {"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_INLINE_HEARTBEAT_S": "1"}
    )
    tasks = {"slow": _slow_task}
    holder = InlineRunner(settings, factory, tasks=tasks)
    other = InlineRunner(settings, factory, tasks=tasks)
    try:
        job = submit(factory, holder, kind="slow", payload={"seconds": 4.5}, now=utc_now())
        assert _get(db_engine, job.id).owner == holder.owner
        deadline = time.monotonic() + 4.2
        while time.monotonic() < deadline:
            other.maintain_once()
            time.sleep(0.25)
        holder.wait(timeout=10)
    finally:
        holder.shutdown()
        other.shutdown()
    row = _get(db_engine, job.id)
    assert (row.status, row.error, row.result) == ("finished", None, {"slept": 4.5})


def test_a_reaped_job_keeps_its_interrupted_outcome(db_engine: Engine, tmp_path: Path) -> None:
    # A stalled process whose job was reaped must not flip it back to finished.
    factory = make_session_factory(db_engine)
    settings = load_settings({"ATTESTOR_DATA_DIR": str(tmp_path)})
    gate = threading.Event()

    def blocked(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
        gate.wait(10)
        return {"late": True}

    started = NOW - timedelta(hours=1)
    runner = InlineRunner(settings, factory, tasks={"blocked": blocked}, clock=lambda: started)
    try:
        job = submit(factory, runner, kind="blocked", payload={}, now=started)
        assert reap_abandoned(factory, heartbeat_s=1, now=NOW) == [job.id]
        gate.set()
        runner.wait(timeout=10)
    finally:
        runner.shutdown()
    row = _get(db_engine, job.id)
    assert (row.status, row.error, row.result) == ("failed", jobs.INTERRUPTED, None)


def _schedule(engine: Engine, now: datetime) -> str | None:
    with make_session_factory(engine).begin() as s:
        row = jobs.create_scheduled_job(
            s,
            schedule="sweep",
            kind="reverify",
            payload={"scope": "all"},
            now=now,
            min_gap=timedelta(minutes=54),
        )
    return row.id if row is not None else None


def test_scheduled_job_once_per_period(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    first = _schedule(db_engine, NOW)
    assert first is not None
    # Unfinished: held off even after the gap.
    assert _schedule(db_engine, NOW + timedelta(minutes=30)) is None
    assert _schedule(db_engine, NOW + timedelta(minutes=60)) is None
    with factory.begin() as s:
        jobs.update_job(s, first, status="finished", result={}, now=NOW)
    assert _schedule(db_engine, NOW + timedelta(minutes=53)) is None
    second = _schedule(db_engine, NOW + timedelta(minutes=55))
    assert second is not None and second != first
    assert _get(db_engine, second).schedule == "sweep"
    # An unfinished job stuck for a day (lost with Redis) no longer blocks the schedule.
    assert _schedule(db_engine, NOW + timedelta(hours=25)) is not None
    # Jobs without a schedule never count.
    _job(db_engine, now=NOW + timedelta(hours=26))
    with factory() as s:
        assert jobs.count_jobs(s, statuses=jobs.JOB_STATUSES) == 4


@pytest.mark.parametrize("contenders", [8])
def test_racing_submitters_insert_one_job_per_period(db_engine: Engine, contenders: int) -> None:
    periods = 5
    barrier = threading.Barrier(contenders)
    won: list[list[str]] = [[] for _ in range(periods)]
    errors: list[BaseException] = []

    def contend() -> None:
        try:
            for period in range(periods):
                barrier.wait(timeout=30)
                # Everyone in a period sees the same clock, an hour after the last one.
                job_id = _schedule(db_engine, NOW + timedelta(hours=period))
                if job_id is not None:
                    won[period].append(job_id)
                    with make_session_factory(db_engine).begin() as s:
                        jobs.update_job(s, job_id, status="finished", result={}, now=NOW)
        except BaseException as e:  # surfaced below: a thread's error must fail the test
            errors.append(e)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [len(w) for w in won] == [1] * periods
    with make_session_factory(db_engine)() as s:
        assert jobs.count_jobs(s, statuses=jobs.JOB_STATUSES) == periods
