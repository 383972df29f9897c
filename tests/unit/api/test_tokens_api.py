# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import sqlite3

from flask import Flask
from flask.testing import FlaskClient

from attestor.api._state import app_state
from tests.unit.api.conftest import bearer


def test_create_list_revoke(app: Flask, client: FlaskClient, role_tokens: dict[str, str]) -> None:
    admin = bearer(role_tokens["admin"])
    r = client.post(
        "/v1/tokens", json={"role": "agent", "agent_id": "node-9", "name": "n9"}, headers=admin
    )
    assert r.status_code == 201
    created = r.get_json()
    assert created["token"].startswith("att_")
    assert created["agent_id"] == "node-9"
    # The new token works at once, with its role.
    assert client.get("/v1/tokens", headers=bearer(created["token"])).status_code == 403

    listed = client.get("/v1/tokens", headers=admin).get_json()["tokens"]
    assert created["id"] in {t["id"] for t in listed}
    assert all("token" not in t and "token_hash" not in t for t in listed)

    assert client.delete(f"/v1/tokens/{created['id']}", headers=admin).status_code == 204
    assert client.get("/v1/jobs/x", headers=bearer(created["token"])).status_code == 401
    assert client.delete("/v1/tokens/nope", headers=admin).status_code == 404


def test_only_hashes_in_database(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    r = client.post("/v1/tokens", json={"role": "pipeline"}, headers=bearer(role_tokens["admin"]))
    secret = r.get_json()["token"]
    db_path = app_state(app).settings.data_dir / "attestor.db"
    app_state(app).engine.dispose()  # flush WAL readers; read the file with a plain client
    conn = sqlite3.connect(db_path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    for plaintext in [secret, *role_tokens.values()]:
        assert plaintext not in dump
    assert secret[4:] not in dump


def test_first_start_creates_admin_token_and_key(app: Flask) -> None:
    from attestor.store import signing_keys, tokens

    state = app_state(app)
    with state.session_factory() as s:
        all_tokens = tokens.list_tokens(s)
        key = signing_keys.active_key(s)
    assert [t.role for t in all_tokens] == ["admin"]
    assert key is not None
    assert key.algorithm == "ecdsa-p256"
    key_files = list(state.settings.keys_dir.iterdir())
    assert len(key_files) == 1
    assert key_files[0].stat().st_mode & 0o777 == 0o600
    assert state.settings.keys_dir.stat().st_mode & 0o777 == 0o700


def test_admin_token_env_is_seeded_idempotently(make_app) -> None:  # type: ignore[no-untyped-def]
    secret = "seeded-admin-token-0123456789"
    app = make_app(admin_token=secret)
    make_app(admin_token=secret)  # a restart
    client = app.test_client()
    r = client.get("/v1/tokens", headers=bearer(secret))
    assert r.status_code == 200
    assert [t["name"] for t in r.get_json()["tokens"]] == ["ATTESTOR_ADMIN_TOKEN"]
