# SPDX-License-Identifier: Apache-2.0
"""Issuance on PostgreSQL: concurrency, idempotence, paging, and the 202 job through rq."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from attestor.api._state import app_state
from attestor.jobs.runner import RQRunner
from attestor.registry import RegistryClient
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    base = make_url(postgres_url)
    name = f"issuance_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgres_race_idempotence_and_paging(
    make_server: Callable[..., Server],
    pg_database_url: str,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    server = make_server(env={"DATABASE_URL": pg_database_url})
    assert app_state(server.app).engine.dialect.name == "postgresql"
    image = push(pusher, unique_name("pg"), "v1", layers=3)

    def issue(_: int) -> tuple[int, Any]:
        response = server.app.test_client().post(
            "/v1/attestations", json={"image": image.by_tag}, headers=server.pipeline
        )
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(issue, range(4)))
    assert sorted(s for s, _ in results) == [200, 200, 200, 201], results
    assert len({tuple(a["id"] for a in b["attestations"]) for _, b in results}) == 1
    assert server.counts() == (1, 3, 3)
    ids = [a["id"] for a in results[0][1]["attestations"]]
    seen: list[str] = []
    cursor = ""
    while True:
        page = server.get(f"/v1/attestations?limit=1{cursor}").get_json()
        seen += [i["id"] for i in page["items"]]
        if page["next"] is None:
            break
        cursor = f"&cursor={page['next']}"
    assert sorted(seen) == sorted(ids)
    envelope = server.get(f"/v1/attestations/{ids[0]}/envelope").get_data()
    assert envelope.startswith(b"{") and b'"payloadType"' in envelope


def test_large_image_job_runs_on_rq(
    make_server: Callable[..., Server],
    pg_database_url: str,
    redis_url: str,
    registry: Any,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rq import SimpleWorker

    env = {"DATABASE_URL": pg_database_url, "REDIS_URL": redis_url}
    server = make_server(env={**env, "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "1"})
    settings = app_state(server.app).settings
    # rq_entry (run by the worker below) builds its settings from the environment.
    for key, value in {
        **env,
        "ATTESTOR_DATA_DIR": str(settings.data_dir),
        "ATTESTOR_POLICY_DIR": str(settings.policy_dir),
        "ATTESTOR_INSECURE_REGISTRIES": registry.host,
    }.items():
        monkeypatch.setenv(key, value)
    runner = app_state(server.app).runner
    assert isinstance(runner, RQRunner)
    image = push(pusher, unique_name("rq"), "v1", layers=2)
    accepted = server.issue(image.by_digest)
    assert accepted.status_code == 202, accepted.get_json()
    job_url = accepted.get_json()["job"]["url"]
    queue = runner.queue
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)
    job = server.get(job_url).get_json()
    assert job["status"] == "finished", job
    assert [a["layer"]["digest"] for a in job["result"]["attestations"]] == list(
        image.layer_digests
    )
    assert server.counts() == (1, 2, 2)
