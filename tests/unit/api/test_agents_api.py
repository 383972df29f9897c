# SPDX-License-Identifier: Apache-2.0
"""/v1/agents: registration, heartbeats scoped to the token's agent, silent nodes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import Settings
from attestor.jobs.runner import InlineRunner
from attestor.store import agents as agent_store
from tests.unit.api.conftest import NOW, bearer, create_token

REGISTER = {"hostname": "node-a", "mode": "node", "version": "0.1.0", "namespaces": ["k8s.io"]}
BEAT = {"containers": 3, "layers": 12, "pending_violations": 0}


def test_register_returns_bound_id_and_public_keys(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    response = client.post(
        "/v1/agents/register", json=REGISTER, headers=bearer(role_tokens["agent"])
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["agent_id"] == "node-1"
    assert len(body["keys"]) == 1
    key = body["keys"][0]
    assert set(key) == {"keyid", "algorithm", "public_key_pem", "status", "created"}
    assert key["status"] == "active"
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in response.get_data(as_text=True)


def test_register_is_an_upsert_keeping_first_registration(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    headers = bearer(role_tokens["agent"])
    assert client.post("/v1/agents/register", json=REGISTER, headers=headers).status_code == 200
    again = {**REGISTER, "version": "0.2.0", "mode": "sidecar", "namespaces": []}
    assert client.post("/v1/agents/register", json=again, headers=headers).status_code == 200
    with app_state(app).session_factory() as session:
        rows = agent_store.list_agents(session, now=NOW)
    assert [(r.id, r.version, r.mode, r.namespaces) for r in rows] == [
        ("node-1", "0.2.0", "sidecar", ())
    ]


def test_register_rejects_bad_mode(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    response = client.post(
        "/v1/agents/register",
        json={**REGISTER, "mode": "daemon"},
        headers=bearer(role_tokens["agent"]),
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "mode" in response.get_json()["errors"]["json"]


def test_heartbeat_own_id_updates_last_heartbeat(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    headers = bearer(role_tokens["agent"])
    client.post("/v1/agents/register", json=REGISTER, headers=headers)
    response = client.post("/v1/agents/node-1/heartbeat", json=BEAT, headers=headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    with app_state(app).session_factory() as session:
        row = agent_store.get_agent(session, "node-1")
    assert row.last_heartbeat_at == NOW
    assert (row.containers, row.layers, row.pending_violations) == (3, 12, 0)


def test_heartbeat_for_another_agent_is_forbidden(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    other, _ = create_token(app, "agent", "node-2")
    client.post("/v1/agents/register", json=REGISTER, headers=bearer(other))
    response = client.post(
        "/v1/agents/node-2/heartbeat", json=BEAT, headers=bearer(role_tokens["agent"])
    )
    assert response.status_code == 403
    assert response.get_json()["type"] == "urn:attestor:problem:forbidden"
    with app_state(app).session_factory() as session:
        assert agent_store.get_agent(session, "node-2").last_heartbeat_at is None


def test_heartbeat_before_registration_is_404(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    response = client.post(
        "/v1/agents/node-1/heartbeat", json=BEAT, headers=bearer(role_tokens["agent"])
    )
    assert response.status_code == 404
    assert "register" in response.get_json()["detail"]


def test_heartbeat_rejects_negative_counts(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    response = client.post(
        "/v1/agents/node-1/heartbeat",
        json={**BEAT, "layers": -1},
        headers=bearer(role_tokens["agent"]),
    )
    assert response.status_code == 422


class Clock:
    """A clock the test moves: time is a parameter of the app."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def clocked_app(settings: Settings, clock: Clock) -> Iterator[Flask]:
    app = create_app(settings, overrides={"TESTING": True}, clock=clock)
    yield app
    state = app_state(app)
    if isinstance(state.runner, InlineRunner):
        state.runner.shutdown()
    state.engine.dispose()


def test_silent_agents_listed(clocked_app: Flask, clock: Clock) -> None:
    app = clocked_app
    client = app.test_client()
    admin = bearer(create_token(app, "admin")[0])
    tokens = {n: bearer(create_token(app, "agent", n)[0]) for n in ("a", "b", "c")}
    for headers in tokens.values():
        assert client.post("/v1/agents/register", json=REGISTER, headers=headers).status_code == 200
    clock.now = NOW + timedelta(minutes=10)
    client.post("/v1/agents/a/heartbeat", json=BEAT, headers=tokens["a"])
    clock.now = NOW + timedelta(minutes=12)
    client.post("/v1/agents/register", json=REGISTER, headers=tokens["c"])  # restarted: alive
    clock.now = NOW + timedelta(minutes=13)

    silent = client.get("/v1/agents?silent_for=120", headers=admin).get_json()["items"]
    assert [a["id"] for a in silent] == ["a", "b"]
    assert all(a["silent"] for a in silent)
    recent = client.get("/v1/agents?silent_for=300", headers=admin).get_json()["items"]
    assert [a["id"] for a in recent] == ["b"]

    everyone = client.get("/v1/agents", headers=admin).get_json()["items"]
    by_id = {a["id"]: a for a in everyone}
    assert set(by_id) == {"a", "b", "c"}
    # The default threshold is 5 minutes.
    assert (by_id["a"]["silent"], by_id["b"]["silent"], by_id["c"]["silent"]) == (
        False,
        True,
        False,
    )
    assert by_id["a"]["last_heartbeat_at"].startswith("2026-05-06T07:18:09")
    assert by_id["b"]["last_heartbeat_at"] is None
    assert by_id["a"]["containers"] == 3


def test_silent_for_must_be_non_negative(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    response = client.get("/v1/agents?silent_for=-1", headers=bearer(role_tokens["admin"]))
    assert response.status_code == 422
