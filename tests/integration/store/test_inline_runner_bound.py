# SPDX-License-Identifier: Apache-2.0
"""The in-process runner holds a bounded number of jobs: past it, Unavailable (503)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from attestor.config import load_settings
from attestor.errors import Unavailable
from attestor.jobqueue import TaskContext, submit, utc_now
from attestor.jobs.runner import InlineRunner
from attestor.store import jobs
from attestor.store.db import make_session_factory


def test_a_full_backlog_refuses_new_jobs_and_marks_them_failed(
    db_engine: Engine, tmp_path: Path
) -> None:
    factory = make_session_factory(db_engine)
    settings = load_settings({"ATTESTOR_DATA_DIR": str(tmp_path)})
    gate = threading.Event()
    ran: list[int] = []

    def blocked(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
        gate.wait(10)
        ran.append(int(payload["n"]))
        return {}

    runner = InlineRunner(
        settings, factory, tasks={"blocked": blocked}, max_workers=1, max_pending=3
    )
    try:
        held = [
            submit(factory, runner, kind="blocked", payload={"n": n}, now=utc_now())
            for n in range(3)
        ]
        with pytest.raises(Unavailable) as refused:
            submit(factory, runner, kind="blocked", payload={"n": 3}, now=utc_now())
        assert refused.value.retry_after > 0
        gate.set()
        runner.wait(timeout=10)
        # Room again once they finished.
        submit(factory, runner, kind="blocked", payload={"n": 4}, now=utc_now())
        runner.wait(timeout=10)
    finally:
        gate.set()
        runner.shutdown()
    assert sorted(ran) == [0, 1, 2, 4]
    with factory() as s:
        statuses = [jobs.get_job(s, j.id).status for j in held]
        assert statuses == ["finished"] * 3
        assert jobs.count_jobs(s, statuses=("failed",)) == 1
