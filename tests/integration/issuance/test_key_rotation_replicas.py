# SPDX-License-Identifier: Apache-2.0
"""Two replicas (one database, separate scratch data dirs, ATTESTOR_KEY_FILES=external):
a key registered by signer URI on one replica signs attestations issued by the other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from attestor.verify import TrustedKey, Verifier
from tests.harness.keyfiles import write_private_key
from tests.integration.issuance.conftest import Server


def test_key_registered_by_uri_signs_on_the_other_replica(
    make_server: Callable[..., Server], sample_image: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    first = write_private_key(secret / "signing-key.pem", ec.generate_private_key(ec.SECP256R1()))
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "ATTESTOR_SIGNING_KEY": first.as_uri(),
        "ATTESTOR_KEY_FILES": "external",
    }
    replica_a, replica_b = make_server(env=env), make_server(env=env)
    old = replica_a.active_key()
    old_ids = [a["id"] for a in replica_b.issue(sample_image.by_tag).get_json()["attestations"]]

    # Rotation that would write into replica A's data dir is refused, changing nothing.
    refused = replica_a.client.post("/v1/keys/rotate", json={}, headers=replica_a.admin)
    assert refused.status_code == 409 and refused.get_json()["reason"] == "key-files-external"
    assert replica_b.active_key() == old

    second = write_private_key(secret / "signing-key-2.pem", ed25519.Ed25519PrivateKey.generate())
    registered = replica_a.client.post(
        "/v1/keys",
        json={"signer_uri": second.as_uri(), "activate": True},
        headers=replica_a.admin,
    )
    assert registered.status_code == 201, registered.get_json()
    new = registered.get_json()
    assert new["status"] == "active" and new["algorithm"] == "ed25519"

    # Replica B (which never saw the request) signs with the new key.
    issued = replica_b.issue(sample_image.by_tag)
    assert issued.status_code == 201, issued.get_json()
    item = issued.get_json()["attestations"][0]
    assert item["id"] not in old_ids
    envelope = replica_b.get(item["envelope_url"]).get_data()
    verified = Verifier(keys=[TrustedKey.from_pem(new["public_key_pem"])]).verify_envelope(envelope)
    assert verified.keys == (new["keyid"],)
    statuses = {k["keyid"]: k["status"] for k in replica_b.get("/v1/keys").get_json()["keys"]}
    assert statuses == {old["keyid"]: "retired", new["keyid"]: "active"}
    # No replica wrote a key file into its data dir.
    for replica in (replica_a, replica_b):
        keys_dir = replica.app.extensions["attestor"].settings.keys_dir
        assert not list(keys_dir.glob("*.pem"))
