# SPDX-License-Identifier: Apache-2.0
"""A revoked attestation stays revoked in bulk verification however its envelope
is re-serialized: issued from the harness registry, revoked through the API,
then copies submitted to ``POST /v1/verifications`` on PostgreSQL, verified by
the in-process runner and by a real ``attestor worker`` on Redis."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from attestor.api._state import app_state
from attestor.jobs.runner import InlineRunner, RQRunner
from tests.integration.bulk._issuing import bearer, issuing_app
from tests.integration.issuance._images import client_for, push

ATTESTOR = str(Path(sys.executable).with_name("attestor"))
#: A Redis database of its own, so other areas' queues are untouched.
REDIS_DB = 9


def _copies(envelope: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Copies that change only what no signature covers."""
    junk = {"keyid": "junk", "sig": base64.b64encode(b"\x03" * 64).decode()}
    keyid_changed = copy.deepcopy(envelope)
    keyid_changed["signatures"][0]["keyid"] = "someone-else"
    keyid_dropped = copy.deepcopy(envelope)
    del keyid_dropped["signatures"][0]["keyid"]
    url_safe = copy.deepcopy(envelope)
    url_safe["payload"] = (
        base64.urlsafe_b64encode(base64.b64decode(envelope["payload"])).decode().rstrip("=")
    )
    return {
        "keyid changed": keyid_changed,
        "keyid dropped": keyid_dropped,
        "junk signature appended": {**envelope, "signatures": [*envelope["signatures"], junk]},
        "signatures reordered": {**envelope, "signatures": [junk, *envelope["signatures"]]},
        "payload in URL-safe base64": url_safe,
    }


def _wait_finished(app: Flask, url: str, headers: dict[str, str], timeout: float) -> None:
    client = app.test_client()
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(url, headers=headers).get_json()
        if job["status"] in ("finished", "failed"):
            assert job["status"] == "finished", job
            return
        if time.monotonic() > deadline:
            pytest.fail(f"bulk job not finished after {timeout} s: {job}")
        time.sleep(0.05)


@pytest.fixture
def issued(tmp_path: Path, registry: Any, database_url: str) -> Iterator[dict[str, Any]]:
    """Two attestations issued and read back; the first then revoked through the API."""
    app = issuing_app(tmp_path / "srv", registry, {"DATABASE_URL": database_url})
    try:
        pushed = push(
            client_for(registry.host, tmp_path / "push"), f"{registry.host}/bulk/reser", "v1"
        )
        admin = bearer(app, "admin")
        client = app.test_client()
        response = client.post("/v1/attestations", json={"image": pushed.by_tag}, headers=admin)
        assert response.status_code == 201, response.get_data(as_text=True)
        attestations = response.get_json()["attestations"]
        assert len(attestations) >= 2
        envelopes = [
            json.loads(client.get(a["envelope_url"], headers=admin).get_data())
            for a in attestations
        ]
        revoked = client.post(
            "/v1/revocations",
            json={"target": {"kind": "attestation", "attestation_id": attestations[0]["id"]},
                  "reason": "withdrawn by the builder"},
            headers=admin,
        )  # fmt: skip
        assert revoked.status_code == 201, revoked.get_json()
        yield {
            "root": tmp_path / "srv",
            "database_url": database_url,
            "registry": registry,
            "attestations": attestations,
            "envelopes": envelopes,
            "revocation": revoked.get_json(),
        }
    finally:
        state = app_state(app)
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


def _items(issued: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    first, second = issued["attestations"][:2]
    names: list[str] = []
    items: list[dict[str, Any]] = []
    for name, envelope in _copies(issued["envelopes"][0]).items():
        names.append(f"revoked, {name}")
        items.append({"envelope": envelope, "artifact_digest": first["layer"]["digest"]})
    for name, envelope in _copies(issued["envelopes"][1]).items():
        names.append(f"valid, {name}")
        items.append({"envelope": envelope, "artifact_digest": second["layer"]["digest"]})
    return names, items


def _submit(app: Flask, issued: dict[str, Any]) -> tuple[dict[str, str], list[str], dict[str, Any]]:
    """POST every copy to /v1/verifications; the token, the item names and the job."""
    headers = bearer(app, "pipeline")
    names, items = _items(issued)
    response = app.test_client().post("/v1/verifications", json={"items": items}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return headers, names, response.get_json()["job"]


def _check(results: list[dict[str, Any]], names: list[str], issued: dict[str, Any]) -> None:
    first, second = issued["attestations"][:2]
    assert [r["index"] for r in results] == list(range(len(names)))
    for name, result in zip(names, results, strict=True):
        got = (result["status"], result["revoked"], result["attestation_id"])
        if name.startswith("revoked"):
            # Found as ours by what it signs, so our row's status applies.
            assert got == ("rejected", True, first["id"]), (name, result)
            assert result["reason"] == f"attestation {first['id']} is revoked", (name, result)
        else:
            assert got == ("verified", False, second["id"]), (name, result)


def test_inline_runner(issued: dict[str, Any]) -> None:
    app = issuing_app(
        issued["root"].with_name("inline"),
        issued["registry"],
        {"DATABASE_URL": issued["database_url"]},
    )
    try:
        headers, names, job = _submit(app, issued)
        runner = app_state(app).runner
        assert isinstance(runner, InlineRunner)
        runner.wait(timeout=30)
        results = app.test_client().get(f"{job['url']}/results", headers=headers).get_json()
        _check(results["items"], names, issued)
    finally:
        state = app_state(app)
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


def test_rq_worker(issued: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis = Redis.from_url(url)
    redis.flushdb()
    env = {"DATABASE_URL": issued["database_url"], "REDIS_URL": url}
    app = issuing_app(tmp_path / "rq", issued["registry"], env)
    try:
        assert isinstance(app_state(app).runner, RQRunner)
        headers, names, job = _submit(app, issued)
        worker_env = {
            **os.environ,
            **env,
            "ATTESTOR_DATA_DIR": str(tmp_path / "worker"),
            "ATTESTOR_LOG_LEVEL": "WARNING",
        }
        done = subprocess.run(  # noqa: S603 - our own console script
            [ATTESTOR, "worker", "--burst"],
            env=worker_env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        _wait_finished(app, job["url"], headers, timeout=30)
        results = app.test_client().get(f"{job['url']}/results", headers=headers).get_json()
        _check(results["items"], names, issued)
    finally:
        app_state(app).engine.dispose()
        redis.flushdb()
        redis.close()
