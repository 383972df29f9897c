# SPDX-License-Identifier: Apache-2.0
"""The agent's FeedFollower against the real server app (werkzeug on 127.0.0.1)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from agent.revocation import FeedFollower
from agent.server import FeedResponse, ServerClient, fetch_revocation_feed
from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.revocation import AttestationMeta
from attestor.revocation_feed import feed_epoch
from attestor.services.revocation import FEED_REFRESH
from attestor.store import tokens as token_store
from tests.conftest import REPO_ROOT

LAYER = "sha256:" + "ab" * 32


@dataclass
class Live:
    url: str
    admin: str
    agent: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    settings = load_settings(
        {"ATTESTOR_DATA_DIR": str(tmp_path / "var"), "ATTESTOR_POLICY_DIR": str(policies)}
    )
    app = create_app(settings, overrides={"TESTING": True})
    state = app_state(app)
    with state.session_factory.begin() as s:
        agent, _ = token_store.create_token(s, role="agent", agent_id="node-1", now=state.clock())
        admin, _ = token_store.create_token(s, role="admin", now=state.clock())
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{srv.server_port}", admin, agent)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
        state.engine.dispose()


def _revoke(live: Live, target: dict[str, str]) -> dict[str, object]:
    resp = requests.post(
        live.url + "/v1/revocations",
        json={"target": target, "reason": "integration test"},
        headers={"Authorization": f"Bearer {live.admin}"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    doc: dict[str, object] = resp.json()
    return doc


def test_follower_applies_a_new_revocation_within_one_poll(live: Live, tmp_path: Path) -> None:
    client = ServerClient(live.url, live.agent, timeout=30)
    keys = [k.to_trusted_key() for k in client.keys() if k.status == "active"]
    answers: list[FeedResponse] = []

    def fetch(since: int, limit: int, etag: str | None) -> FeedResponse:
        answers.append(fetch_revocation_feed(client, since=since, limit=limit, etag=etag))
        return answers[-1]

    follower = FeedFollower(
        client, keys, tmp_path / "state", max_age=timedelta(minutes=15),
        clock=lambda: datetime.now(UTC), fetch=fetch,
    )  # fmt: skip
    first = follower.poll()
    assert first.anomaly is None and len(first.revset) == 0
    assert follower.state.feed_id is not None and follower.state.etag is not None

    created = _revoke(live, {"kind": "subject", "digest": LAYER})
    result = follower.poll()
    assert result.anomaly is None and result.changed
    hit = result.revset.match(AttestationMeta(layer_digest=LAYER))
    assert hit is not None and hit.id == created["id"] and hit.sequence == created["sequence"]
    assert follower.state.cursor == created["sequence"]

    # Caught up: an empty page with an ETag, then 304 with nothing changed.
    assert follower.poll().anomaly is None
    before = follower.state
    assert before.etag is not None
    epoch = feed_epoch(datetime.now(UTC), FEED_REFRESH)
    again = follower.poll()
    assert again.anomaly is None and not again.changed
    if feed_epoch(datetime.now(UTC), FEED_REFRESH) == epoch:  # else a fresh page is due
        assert answers[-1].not_modified and follower.state == before

    restarted = FeedFollower(
        ServerClient(live.url, live.agent, timeout=30), keys, tmp_path / "state",
        max_age=timedelta(minutes=15), clock=lambda: datetime.now(UTC),
    )  # fmt: skip
    assert restarted.revset.match(AttestationMeta(layer_digest=LAYER)) is not None
    assert restarted.poll().anomaly is None
