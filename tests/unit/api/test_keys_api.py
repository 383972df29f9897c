# SPDX-License-Identifier: Apache-2.0
"""``/v1/keys`` with several replicas: keys registered by signer URI, and
``ATTESTOR_KEY_FILES=external`` refusing replica-local key files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask
from flask.testing import FlaskClient

from attestor.api._state import app_state
from attestor.services import keys as key_service
from attestor.signing.keys import sslib_key
from tests.harness.keyfiles import PrivateKey, write_private_key
from tests.unit.api.conftest import bearer, create_token

PROBLEM = "application/problem+json"


def _key_file(directory: Path, key: PrivateKey) -> Path:
    # Stands for a Secret every replica mounts: outside every replica's data dir.
    return write_private_key(directory / "signing-key-2.pem", key)


def _keys(client: FlaskClient, token: str) -> list[dict[str, Any]]:
    r = client.get("/v1/keys", headers=bearer(token))
    assert r.status_code == 200
    keys: list[dict[str, Any]] = r.get_json()["keys"]
    return keys


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    return body


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*")) if directory.exists() else []


def test_key_registered_by_uri_signs_on_every_replica(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    # Two replicas: one database, separate data dirs, the same mounted key file.
    replica_a = make_app(key_files="external")
    replica_b = make_app(key_files="external", data_dir=tmp_path / "replica-b")
    admin = create_token(replica_a, "admin")[0]
    private = ed25519.Ed25519PrivateKey.generate()
    path = _key_file(tmp_path / "secret", private)
    files_before = _files(app_state(replica_a).settings.data_dir)

    r = replica_a.test_client().post(
        "/v1/keys", json={"signer_uri": path.as_uri(), "activate": True}, headers=bearer(admin)
    )
    assert r.status_code == 201, r.get_json()
    key = r.get_json()
    assert key["status"] == "active" and key["algorithm"] == "ed25519"
    text = r.get_data(as_text=True)
    assert "signer" not in text and "file:" not in text and "PRIVATE" not in text
    assert _files(app_state(replica_a).settings.data_dir) == files_before

    # The other replica signs with it, and the signature verifies with the published key.
    with app_state(replica_b).session_factory() as session:
        active = key_service.active_signer(session)
    assert active.keyid == key["keyid"]
    signature = active.signer.sign(b"payload")
    sslib_key(key["public_key_pem"]).verify_signature(signature, b"payload")


def test_unloadable_signer_uri_is_a_problem_and_stores_nothing(
    client: FlaskClient, role_tokens: dict[str, str], tmp_path: Path
) -> None:
    admin = role_tokens["admin"]
    before = _keys(client, admin)
    for body, status, text in [
        ({"signer_uri": (tmp_path / "missing.pem").as_uri()}, 400, "No such file"),
        ({"signer_uri": "/etc/attestor/keys/k.pem"}, 400, "file:///absolute"),
        ({"signer_uri": "s3://bucket/k.pem"}, 400, "file:///absolute"),
        ({"signer_uri": "gcpkms:projects/p/locations/l/keyRings/r"}, 400, "public_key_pem"),
    ]:
        problem = _problem(client.post("/v1/keys", json=body, headers=bearer(admin)), status)
        assert text in problem["detail"]
    # Schema: one source only; public_key_pem only with signer_uri.
    path = _key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    for body in [
        {"signer_uri": path.as_uri(), "algorithm": "ed25519"},
        {"algorithm": "ed25519", "public_key_pem": "x"},
        {"signer_uri": ""},
    ]:
        _problem(client.post("/v1/keys", json=body, headers=bearer(admin)), 422)
    assert _keys(client, admin) == before
    refused = client.post(
        "/v1/keys", json={"signer_uri": path.as_uri()}, headers=bearer(role_tokens["pipeline"])
    )
    assert refused.status_code == 403


def test_registering_the_same_key_twice_is_a_conflict(
    client: FlaskClient, role_tokens: dict[str, str], tmp_path: Path
) -> None:
    path = _key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    admin = bearer(role_tokens["admin"])
    first = client.post("/v1/keys", json={"signer_uri": path.as_uri()}, headers=admin)
    assert first.status_code == 201 and first.get_json()["status"] == "retired"
    again = client.post(
        "/v1/keys", json={"signer_uri": path.as_uri(), "activate": True}, headers=admin
    )
    _problem(again, 409)
    statuses = {k["keyid"]: k["status"] for k in _keys(client, role_tokens["admin"])}
    # The failed activation rolled back: the first key is still retired, another active.
    assert statuses[first.get_json()["keyid"]] == "retired"
    assert list(statuses.values()).count("active") == 1


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/keys", {"algorithm": "ed25519", "activate": True}),
        ("/v1/keys/rotate", {"algorithm": "ecdsa-p256"}),
        ("/v1/keys/rotate", None),
    ],
)
def test_external_key_files_refuse_writing_keys(
    make_app: Callable[..., Flask], url: str, body: dict[str, Any] | None
) -> None:
    app = make_app(key_files="external")
    client = app.test_client()
    admin = create_token(app, "admin")[0]
    before = _keys(client, admin)
    keys_dir = app_state(app).settings.keys_dir
    files = _files(keys_dir)
    r = client.post(url, json=body, headers=bearer(admin))
    problem = _problem(r, 409)
    assert problem["reason"] == "key-files-external"
    assert "signer_uri" in problem["detail"] and "every replica" in problem["detail"]
    assert _keys(client, admin) == before
    assert _files(keys_dir) == files


def test_external_key_files_refuse_pem_import_and_replica_local_uris(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(key_files="external")
    client = app.test_client()
    admin = create_token(app, "admin")[0]
    before = _keys(client, admin)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    imported = client.post("/v1/keys", json={"private_key_pem": pem}, headers=bearer(admin))
    assert _problem(imported, 409)["reason"] == "key-files-external"
    # A file inside the data dir exists on this replica only.
    settings = app_state(app).settings
    local = _key_file(settings.data_dir / "elsewhere", private)
    problem = _problem(
        client.post("/v1/keys", json={"signer_uri": local.as_uri()}, headers=bearer(admin)), 400
    )
    assert "data directory" in problem["detail"]
    assert _keys(client, admin) == before


def test_external_key_files_still_allow_revocation(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(key_files="external")
    client = app.test_client()
    admin = create_token(app, "admin")[0]
    path = _key_file(tmp_path / "secret", ec.generate_private_key(ec.SECP256R1()))
    added = client.post("/v1/keys", json={"signer_uri": path.as_uri()}, headers=bearer(admin))
    assert added.status_code == 201, added.get_json()
    keyid = added.get_json()["keyid"]
    r = client.post(f"/v1/keys/{keyid}/revoke", json={"reason": "lost"}, headers=bearer(admin))
    assert r.status_code == 200 and r.get_json()["status"] == "revoked"
