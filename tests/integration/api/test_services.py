# SPDX-License-Identifier: Apache-2.0
"""The API on PostgreSQL, readiness with Redis, and jobs through rq."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.jobs.runner import QUEUE_NAME, RQRunner
from attestor.store import jobs, tokens

pytestmark = pytest.mark.integration
NOW = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    base = make_url(postgres_url)
    name = f"api_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def app(
    tmp_path: Path, pg_database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    env = {
        "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
        "DATABASE_URL": pg_database_url,
        "REDIS_URL": redis_url,
    }
    for k, v in env.items():
        # rq_entry (run by the worker below) builds its settings from the environment.
        monkeypatch.setenv(k, v)
    app = create_app(load_settings(env), overrides={"TESTING": True})
    yield app
    app_state(app).engine.dispose()


def test_postgres_api_readyz_and_rq_job(app: Flask) -> None:
    from rq import SimpleWorker

    state = app_state(app)
    assert state.engine.dialect.name == "postgresql"
    assert isinstance(state.runner, RQRunner)
    client = app.test_client()
    r = client.get("/readyz")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["checks"] == {"database": "ok", "redis": "ok"}

    with state.session_factory.begin() as s:
        secret, row = tokens.create_token(s, role="pipeline", now=NOW)
        job = jobs.create_job(s, kind="echo", payload={"n": 7}, created_by=row.id, now=NOW)
    state.runner.enqueue("echo", {"n": 7}, job_id=job.id)
    queue = state.runner.queue  # type: ignore[attr-defined]
    assert queue.name == QUEUE_NAME
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)

    r = client.get(f"/v1/jobs/{job.id}", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    assert r.get_json()["status"] == "finished"
    assert r.get_json()["result"] == {"echo": {"n": 7}}
