# SPDX-License-Identifier: Apache-2.0
"""Two server replicas on one database: a revocation made on one reaches agents
polling the other, and a revoked or deleted token stops working there, within
the caches' documented bound (docs/revocation-feed.md, "Caches")."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, delete

from attestor.services.revocation import FEED_STATE_SECONDS
from attestor.services.token_cache import CHECK_SECONDS
from attestor.store.models import TokenModel
from tests.harness.databases import fresh_postgres_database

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
FEED = "/v1/revocations/feed"
# A poll sent this long after the change was committed must see it. The
# margin covers only the client's own clock reading, not server-side delays.
MARGIN = 0.05


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """``attestor serve --workers 2``, stopped by PID."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attestor", "serve", "--workers", "2", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a slow first answer on a busy host
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(log.read_text()[-3000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        yield f"sqlite:///{tmp_path / 'var' / 'shared.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Replica, Replica, str]]:
    admin_token = secrets.token_urlsafe(24)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ATTESTOR_", "DATABASE_URL", "REDIS_URL"))
    }
    # One data directory (signing key files) and one database, as replicas share them.
    env.update(
        ATTESTOR_DATA_DIR=str(tmp_path / "var"),
        DATABASE_URL=database_url,
        ATTESTOR_ADMIN_TOKEN=admin_token,
        ATTESTOR_LOG_LEVEL="WARNING",
    )
    first = Replica(env, tmp_path / "a.log")
    try:
        second = Replica(env, tmp_path / "b.log")
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second, admin_token
    finally:
        second.stop()
        first.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _agent_token(replica: Replica, admin: str, agent_id: str) -> tuple[str, str]:
    made = requests.post(
        replica.url + "/v1/tokens",
        json={"role": "agent", "agent_id": agent_id},
        headers=_bearer(admin),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["id"]


def _poll_after(
    replica: Replica, headers: dict[str, str], path: str, since: float, bound: float
) -> list[tuple[float, requests.Response]]:
    """Poll (new connection each time, so both workers answer) until ``bound`` + 1 s."""
    seen = []
    while True:
        sent = time.monotonic() - since
        seen.append((sent, requests.get(replica.url + path, headers=headers, timeout=10)))
        if sent > bound + 1.0:
            return seen


def test_a_revocation_on_one_replica_reaches_polls_on_the_other(
    replicas: tuple[Replica, Replica, str],
) -> None:
    a, b, admin = replicas
    agent, _ = _agent_token(a, admin, "node-1")
    first = requests.get(b.url + FEED, headers=_bearer(agent), timeout=10)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    conditional = {**_bearer(agent), "If-None-Match": etag}
    # Both workers of b now hold the feed state (and the token).
    assert {requests.get(b.url + FEED, headers=conditional, timeout=10).status_code
            for _ in range(12)} == {304}  # fmt: skip

    target = {"kind": "subject", "digest": "sha256:" + "ab" * 32}
    made = requests.post(
        a.url + "/v1/revocations",
        json={"target": target, "reason": "replica test"},
        headers=_bearer(admin),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    committed = time.monotonic()

    polls = _poll_after(b, conditional, FEED, committed, FEED_STATE_SECONDS)
    late = [(sent, r) for sent, r in polls if sent >= FEED_STATE_SECONDS + MARGIN]
    assert late, "no poll after the bound"
    assert {r.status_code for _, r in late} == {200}
    for _, r in late:
        page = json.loads(base64.b64decode(r.json()["payload"]))
        assert page["latest"] == 1
        assert [(x["sequence"], x["target"]) for x in page["revocations"]] == [(1, target)]
        assert r.headers["ETag"] != etag


def test_a_token_revoked_or_deleted_on_one_replica_fails_on_the_other(
    replicas: tuple[Replica, Replica, str], database_url: str
) -> None:
    a, b, admin = replicas
    revoked, revoked_id = _agent_token(a, admin, "node-2")
    deleted, deleted_id = _agent_token(a, admin, "node-3")
    for token in (revoked, deleted):
        assert {requests.get(b.url + FEED, headers=_bearer(token), timeout=10).status_code
                for _ in range(12)} == {200}  # fmt: skip

    answer = requests.delete(f"{a.url}/v1/tokens/{revoked_id}", headers=_bearer(admin), timeout=10)
    assert answer.status_code == 204
    committed = time.monotonic()
    polls = _poll_after(b, _bearer(revoked), FEED, committed, CHECK_SECONDS)
    late = {r.status_code for sent, r in polls if sent >= CHECK_SECONDS + MARGIN}
    assert late == {401}

    # A row deleted by hand (no API, no server process involved).
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(TokenModel).where(TokenModel.id == deleted_id))
    committed = time.monotonic()
    engine.dispose()
    polls = _poll_after(b, _bearer(deleted), FEED, committed, CHECK_SECONDS)
    late = {r.status_code for sent, r in polls if sent >= CHECK_SECONDS + MARGIN}
    assert late == {401}
