# SPDX-License-Identifier: Apache-2.0
"""``attestor worker`` runs only our own rq entry points, whatever a job in Redis names.

The attacker here can write to Redis (a shared or exposed instance) but not
to the worker's host: a job naming ``os.system`` must fail without running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from attestor.config import load_settings
from attestor.jobqueue import submit, utc_now
from attestor.jobs.runner import QUEUE_NAME, RQRunner, rq_entry
from attestor.store import jobs as job_store
from attestor.store.db import make_engine, make_session_factory, upgrade

ATTESTOR = str(Path(sys.executable).with_name("attestor"))
REDIS_DB = 11


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[tuple[str, Redis]]:
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis = Redis.from_url(url)
    redis.flushdb()
    try:
        yield url, redis
    finally:
        redis.flushdb()
        redis.close()


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    assert result is not None
    return str(result.exc_string)


def test_a_job_naming_any_other_function_fails_and_ours_still_run(
    tmp_path: Path, redis_db: tuple[str, Redis]
) -> None:
    url, redis = redis_db
    env = {
        **os.environ,
        "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
        "REDIS_URL": url,
        "ATTESTOR_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    settings = load_settings(env)
    settings.data_dir.mkdir()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    try:
        ours = submit(factory, RQRunner(url), kind="echo", payload={"n": 1}, now=utc_now())
        # What an attacker with access to Redis writes, as rq would store it.
        queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
        marker = tmp_path / "pwned"
        shell = queue.enqueue("os.system", f"touch {marker}")
        # Our own module, but not an rq entry point: an allow-list, not a prefix.
        task = queue.enqueue("attestor.jobs.tasks.echo", {"n": 2}, None)
        # One of ours, with a callback that is not.
        callback = queue.enqueue(
            rq_entry,
            "echo",
            {"n": 3},
            "no-such-row",
            on_success=Callback("os.system"),
            on_failure=Callback("os.system"),
        )

        done = subprocess.run(  # noqa: S603 - our own console script
            [ATTESTOR, "worker", "--burst"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]

        assert not marker.exists()
        for job, name in ((shell, "os.system"), (task, "attestor.jobs.tasks.echo")):
            job.refresh()
            assert job.get_status() == JobStatus.FAILED
            assert f"names function '{name}', which is not one of ours" in _exc_string(job)
        callback.refresh()
        assert callback.get_status() == JobStatus.FAILED
        assert "callback 'os.system', which is not one of ours" in _exc_string(callback)
        with factory() as session:
            row = job_store.get_job(session, ours.id)
        assert (row.status, row.result) == ("finished", {"echo": {"n": 1}})
    finally:
        engine.dispose()
