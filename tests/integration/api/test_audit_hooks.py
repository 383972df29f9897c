# SPDX-License-Identifier: Apache-2.0
"""Key and token changes land in the audit log, in the same transaction as the change."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.services.audit import verify_chain
from attestor.store import audit as audit_store
from attestor.store import tokens

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    (tmp_path / "policies").mkdir()
    env = {
        "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
        "ATTESTOR_POLICY_DIR": str(tmp_path / "policies"),
    }
    app = create_app(load_settings(env), overrides={"TESTING": True})
    yield app
    app_state(app).engine.dispose()


def _admin(app: Flask) -> tuple[str, dict[str, str]]:
    with app_state(app).session_factory.begin() as s:
        secret, row = tokens.create_token(s, role="admin", now=NOW)
    return row.id, {"Authorization": f"Bearer {secret}"}


def _log(app: Flask) -> list[tuple[str, str, str, dict[str, Any]]]:
    with app_state(app).session_factory() as s:
        assert verify_chain(s).ok
        return [
            (e.actor, e.action, e.target, json.loads(e.change)) for e in audit_store.iter_entries(s)
        ]


def test_token_changes_are_audited_without_secrets(app: Flask) -> None:
    admin_id, headers = _admin(app)
    client = app.test_client()
    created = client.post("/v1/tokens", headers=headers, json={"role": "pipeline", "name": "ci"})
    assert created.status_code == 201
    token = created.get_json()
    assert client.delete(f"/v1/tokens/{token['id']}", headers=headers).status_code == 204
    assert client.delete(f"/v1/tokens/{token['id']}", headers=headers).status_code == 204
    # Refused changes log nothing.
    assert client.delete("/v1/tokens/no-such-token", headers=headers).status_code == 404
    bad_role = client.post("/v1/tokens", headers=headers, json={"role": "agent"})
    assert bad_role.status_code == 400
    actor = f"token:{admin_id}"
    assert _log(app) == [
        (
            actor,
            "token.create",
            f"token:{token['id']}",
            {"role": "pipeline", "agent_id": None, "name": "ci"},
        ),
        (actor, "token.revoke", f"token:{token['id']}", {"role": "pipeline", "agent_id": None}),
    ]
    with app_state(app).session_factory() as s:
        changes = " ".join(e.change for e in audit_store.iter_entries(s))
    assert token["token"] not in changes


def test_key_changes_are_audited(app: Flask) -> None:
    admin_id, headers = _admin(app)
    client = app.test_client()
    created = client.post("/v1/keys", headers=headers, json={"algorithm": "ed25519"})
    assert created.status_code == 201, created.get_data(as_text=True)
    rotated = client.post("/v1/keys/rotate", headers=headers, json={})
    assert rotated.status_code == 201
    keyid = created.get_json()["keyid"]
    revoked = client.post(f"/v1/keys/{keyid}/revoke", headers=headers, json={"reason": "leak"})
    assert revoked.status_code == 200
    assert (
        client.post("/v1/keys/nope/revoke", headers=headers, json={"reason": "x"}).status_code
        == 404
    )
    actor = f"token:{admin_id}"
    log = [(a, act, t, c) for a, act, t, c in _log(app) if act.startswith("key.")]
    assert log == [
        (
            actor,
            "key.create",
            f"key:{keyid}",
            {"algorithm": "ed25519", "status": "retired", "source": "generated", "activate": False},
        ),
        (
            actor,
            "key.rotate",
            f"key:{rotated.get_json()['keyid']}",
            {"algorithm": "ecdsa-p256", "status": "active"},
        ),
        (
            actor,
            "key.revoke",
            f"key:{keyid}",
            {"algorithm": "ed25519", "status": "revoked", "reason": "leak"},
        ),
    ]


def test_the_token_cli_is_audited_as_the_local_user(app: Flask, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTESTOR_", "DATABASE_URL"))}
    env["ATTESTOR_DATA_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "attestor", "token", "create", "--role", "pipeline"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token_id = done.stdout.split()[3].rstrip(",")
    assert _log(app) == [
        (
            f"cli:{getpass.getuser()}",
            "token.create",
            f"token:{token_id}",
            {"role": "pipeline", "agent_id": None, "name": ""},
        )
    ]


def test_revocations_are_audited_after_their_feed_sequence(app: Flask) -> None:
    admin_id, headers = _admin(app)
    client = app.test_client()
    body = {"target": {"kind": "key", "keyid": "k-elsewhere"}, "reason": "lost laptop"}
    created = client.post("/v1/revocations", headers=headers, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    revocation = created.get_json()
    # A key revoked through the keys API is also a revocation: both rows, feed first.
    rotated = client.post("/v1/keys/rotate", headers=headers, json={}).get_json()["keyid"]
    revoked = client.post(f"/v1/keys/{rotated}/revoke", headers=headers, json={"reason": "r"})
    assert revoked.status_code == 200
    log = _log(app)
    assert log[0] == (
        f"token:{admin_id}",
        "revocation.create",
        f"revocation:{revocation['id']}",
        {
            "sequence": revocation["sequence"],
            "target": {"kind": "key", "keyid": "k-elsewhere"},
            "reason": "lost laptop",
            "affected": 0,
        },
    )
    assert [action for _, action, _, _ in log] == [
        "revocation.create",
        "key.rotate",
        "revocation.create",
        "key.revoke",
    ]
    assert log[2][3]["target"] == {"kind": "key", "keyid": rotated}
