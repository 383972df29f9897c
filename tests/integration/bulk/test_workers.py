# SPDX-License-Identifier: Apache-2.0
"""Bulk verification on real ``attestor worker`` processes and a real Redis.

A worker is SIGKILLed in the middle of a chunk; another worker retries that
chunk and every index ends with exactly one, correct result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.jobs.runner import QUEUE_NAME
from attestor.jobs.verification import CHUNK_PREFIX
from attestor.store import jobs as job_store
from attestor.store import tokens as token_store
from attestor.store import verifications as results_store
from tests.unit.bulk._envelopes import WHEN, signed_envelopes

ATTESTOR = str(Path(sys.executable).with_name("attestor"))
#: A database of its own on the session's Redis, so other areas' queues are untouched.
REDIS_DB = 7


@dataclass
class Env:
    app: Flask
    env: dict[str, str]
    redis: Redis
    token: dict[str, str]
    workers: list[subprocess.Popen[bytes]]

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: S603 - our own console script
            [ATTESTOR, "worker", "--maintenance-interval", "1"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers.append(proc)
        return proc


@pytest.fixture
def bulk_env(tmp_path: Path, redis_url: str) -> Iterator[Env]:
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis = Redis.from_url(url)
    redis.flushdb()
    env = {
        **os.environ,
        "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
        "REDIS_URL": url,
        "ATTESTOR_LOG_LEVEL": "WARNING",
        # Short chunk timeout: a killed worker's chunk is retried about 5 s later.
        "ATTESTOR_BULK_CHUNK_SIZE": "150",
        "ATTESTOR_BULK_CHUNK_TIMEOUT_S": "3",
    }
    env.pop("DATABASE_URL", None)
    app = create_app(load_settings(env), overrides={"TESTING": True}, clock=lambda: WHEN)
    with app_state(app).session_factory.begin() as session:
        plaintext, _ = token_store.create_token(session, role="pipeline", agent_id=None, now=WHEN)
    state = Env(app, env, redis, {"Authorization": f"Bearer {plaintext}"}, [])
    try:
        yield state
    finally:
        for proc in state.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        app_state(app).engine.dispose()
        redis.flushdb()
        redis.close()


def _job(app: Flask, job_id: str) -> job_store.JobRow:
    with app_state(app).session_factory() as session:
        return job_store.get_job(session, job_id)


def _wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


def test_killed_worker_chunk_is_retried_without_loss_or_duplicates(bulk_env: Env) -> None:
    app = bulk_env.app
    envelopes = signed_envelopes(app_state(app).session_factory, 900)
    items = [{"envelope": e, "artifact_digest": layer} for layer, e in envelopes]
    items += items[:100]  # duplicates: verified once, reported at both indexes
    client = app.test_client()
    response = client.post("/v1/verifications", json={"items": items}, headers=bulk_env.token)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job"]["id"]
    queue = Queue(QUEUE_NAME, connection=bulk_env.redis, serializer=JSONSerializer)
    started = StartedJobRegistry(queue=queue)

    first = bulk_env.start_worker()
    # Kill it right after it starts its second chunk: a chunk takes tens of ms,
    # polling the registry takes well under one.
    _wait_for(lambda: bool(started.get_job_ids()), 30, "the first chunk to start")
    first_name = next(w.name for w in Worker.all(queue=queue) if w.pid == first.pid)
    seen = set(started.get_job_ids())
    _wait_for(lambda: bool(set(started.get_job_ids()) - seen), 30, "a second chunk to start", 0.001)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    in_flight = started.get_job_ids()
    assert in_flight, "the worker was killed between chunks"
    done_at_kill = _job(app, job_id).progress["done"]
    assert _job(app, job_id).status == "running"
    assert done_at_kill < len(items)

    bulk_env.start_worker()
    bulk_env.start_worker()
    _wait_for(lambda: _job(app, job_id).status != "running", 40, "the job to finish")

    job = _job(app, job_id)
    assert job.status == "finished", job.error
    assert job.progress == {"total": 1000, "done": 1000, "verified": 1000, "rejected": 0}
    with app_state(app).session_factory() as session:
        rows = results_store.list_results(session, job_id, offset=0, limit=5000)
    assert [r.index for r in rows] == list(range(1000))
    assert {r.status for r in rows} == {"verified"}
    # The killed worker's chunk went through rq's abandoned-job retry and was
    # finished by another worker.
    chunks = {
        j.id: j
        for j in Job.fetch_many(
            [f"{job_id}_{n}" for n in range(6)],
            connection=bulk_env.redis,
            serializer=JSONSerializer,
        )
        if j is not None
    }
    assert chunks and all(c.args[0] == job_id for c in chunks.values())
    # The chunks' items (stored beside the rq jobs) are deleted once the job finished.
    assert not bulk_env.redis.keys(f"{CHUNK_PREFIX}{job_id}_*")
    for entry in in_flight:
        chunk = chunks[entry.split(":")[0]]
        info = (chunk.id, chunk.retries_left, chunk.get_status(), chunk.worker_name, first_name)
        assert chunk.get_status() == "finished", info
        assert chunk.worker_name != first_name, info
        assert chunk.retries_left == 2, info
    status = client.get(f"/v1/jobs/{job_id}", headers=bulk_env.token).get_json()
    assert status["results_url"] == f"/v1/jobs/{job_id}/results"
    page = client.get(f"{status['results_url']}?offset=990&limit=100", headers=bulk_env.token)
    assert [r["index"] for r in page.get_json()["items"]] == list(range(990, 1000))


def test_redis_down_bulk_answers_503_and_reads_work(tmp_path: Path) -> None:
    # A port nothing listens on: connections are refused at once.
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load_settings(
        {"ATTESTOR_DATA_DIR": str(tmp_path / "var"), "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    app = create_app(settings, overrides={"TESTING": True}, clock=lambda: WHEN)
    try:
        with app_state(app).session_factory.begin() as session:
            plaintext, _ = token_store.create_token(session, role="admin", agent_id=None, now=WHEN)
        headers = {"Authorization": f"Bearer {plaintext}"}
        [(layer, envelope)] = signed_envelopes(app_state(app).session_factory, 1)
        client = app.test_client()
        response = client.post(
            "/v1/verifications",
            json={"items": [{"envelope": envelope, "artifact_digest": layer}]},
            headers=headers,
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert response.mimetype == "application/problem+json"
        with app_state(app).session_factory() as session:
            failed = job_store.count_jobs(session, statuses=("failed",))
        assert failed == 1  # the row says why; nothing is left queued
        assert client.get("/v1/keys", headers=headers).status_code == 200
        assert client.get("/healthz").status_code == 200
    finally:
        app_state(app).engine.dispose()


def test_a_chunk_that_keeps_failing_fails_the_job_and_frees_the_chunks(bulk_env: Env) -> None:
    app = bulk_env.app
    envelopes = signed_envelopes(app_state(app).session_factory, 450, seed="failing-")
    items = [{"envelope": e, "artifact_digest": layer} for layer, e in envelopes]
    client = app.test_client()
    response = client.post("/v1/verifications", json={"items": items}, headers=bulk_env.token)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job"]["id"]
    chunk_keys = {f"{CHUNK_PREFIX}{job_id}_{n}".encode() for n in range(3)}
    assert set(bulk_env.redis.keys(f"{CHUNK_PREFIX}{job_id}_*")) == chunk_keys
    # Chunk 1's items vanish (as if Redis lost them) before any worker runs.
    bulk_env.redis.delete(f"{CHUNK_PREFIX}{job_id}_1")

    bulk_env.start_worker()
    _wait_for(lambda: _job(app, job_id).status == "failed", 60, "the job to fail")

    job = _job(app, job_id)
    assert job.error == f"chunk {job_id}_1 failed"
    # Every retry of chunk 1 failed the same way; the other chunks' items are gone too.
    _wait_for(lambda: not bulk_env.redis.keys(f"{CHUNK_PREFIX}{job_id}_*"), 10, "chunk cleanup")
    status = client.get(f"/v1/jobs/{job_id}", headers=bulk_env.token).get_json()
    assert status["status"] == "failed"
