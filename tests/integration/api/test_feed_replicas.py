# SPDX-License-Identifier: Apache-2.0
"""Two server replicas on one database: a revocation made on one reaches agents
polling the other, and a revoked or deleted token stops working there, within
the caches' documented bound (docs/revocation-feed.md, "Caches")."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, delete

from attestor.services.revocation import FEED_STATE_SECONDS
from attestor.services.token_cache import CHECK_SECONDS
from attestor.store.models import TokenModel
from tests.integration.api._replicas import Replica, two_replicas
from tests.integration.api._replicas import database_url as database_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration
FEED = "/v1/revocations/feed"
# A poll sent this long after the change was committed must see it. The
# margin covers only the client's own clock reading, not server-side delays.
MARGIN = 0.05


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Replica, Replica, str]]:
    with two_replicas(tmp_path, database_url) as pair:
        yield pair


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
