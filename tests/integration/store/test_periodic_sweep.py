# SPDX-License-Identifier: Apache-2.0
"""Without Redis every server process runs a SweepTimer; one sweep a period goes through.

Several timers, each with its own runner (as ``serve --workers N`` or replicas
sharing PostgreSQL have), tick at the same moments on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from attestor.config import load_settings
from attestor.jobs.reverify import PERIODIC_SCHEDULE, SweepTimer
from attestor.jobs.runner import InlineRunner
from attestor.store import jobs
from attestor.store.db import make_session_factory
from attestor.store.models import JobModel

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PERIOD = timedelta(hours=1)


def test_racing_timers_submit_one_sweep_per_period(db_engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(db_engine)
    settings = load_settings(
        {"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_POLICY_DIR": str(REPO / "policies")}
    )
    now = [START]
    processes = 4
    runners = [InlineRunner(settings, factory, clock=lambda: now[0]) for _ in range(processes)]
    timers = [SweepTimer(factory, r, clock=lambda: now[0], interval=PERIOD) for r in runners]
    # Checks at tenths of a period, like the timers' own threads; all processes at once.
    checks = [START + PERIOD * k / 10 for k in range(35)]
    barrier = threading.Barrier(processes)
    errors: list[BaseException] = []

    def process(timer: SweepTimer, runner: InlineRunner) -> None:
        try:
            for at in checks:
                if barrier.wait(timeout=30) == 0:
                    now[0] = at
                barrier.wait(timeout=30)
                timer.tick()
                # A sweep finishes within a tenth of a period here; make it so in real time.
                runner.wait(timeout=30)
                barrier.wait(timeout=30)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [
        threading.Thread(target=process, args=pair) for pair in zip(timers, runners, strict=True)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for runner in runners:
            runner.wait(timeout=30)
    finally:
        for runner in runners:
            runner.shutdown()
    assert errors == []
    submitted = [job_id for timer in timers for job_id in timer.submitted]
    with factory() as session:
        rows = [jobs.get_job(session, job_id) for job_id in submitted]
        stored = session.query(JobModel).filter(JobModel.schedule == PERIODIC_SCHEDULE).count()
    # 3.4 periods of checks: sweeps at 0, 0.9, 1.8, 2.7 periods (each one 0.9 after the last).
    assert sorted(row.created_at for row in rows) == [START + PERIOD * k * 9 / 10 for k in range(4)]
    assert stored == len(submitted) == 4
    assert {(row.status, row.error) for row in rows} == {("finished", None)}
    assert all(row.result == {"scope": "all", "checked": 0, "revoked": 0} for row in rows)
