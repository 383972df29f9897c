# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import Conflict, InvalidInput, NotFound
from attestor.services import keys
from attestor.signing.dsse import sign_envelope
from tests.unit.services.conftest import NOW


def test_public_key_has_no_private_material() -> None:
    names = {f.name for f in dataclasses.fields(keys.PublicKey)}
    assert not {"signer_uri", "private_key_pem"} & names


def test_generate_rotate_revoke(factory: sessionmaker[Session], tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    with factory.begin() as s, pytest.raises(Conflict, match="rotate"):
        keys.active_signer(s)
    with factory.begin() as s:
        spare = keys.add_key(s, keys_dir=keys_dir, algorithm="ed25519", now=NOW)
        first = keys.rotate_key(s, keys_dir=keys_dir, algorithm="ecdsa-p256", now=NOW)
    assert spare.status == "retired" and first.status == "active"
    assert (keys_dir / f"{first.keyid}.pem").stat().st_mode & 0o777 == 0o600
    with factory.begin() as s:
        second = keys.rotate_key(s, keys_dir=keys_dir, algorithm="ed25519", now=NOW)
        listed = {k.keyid: k.status for k in keys.list_public_keys(s)}
        active = keys.active_signer(s)
    assert listed == {spare.keyid: "retired", first.keyid: "retired", second.keyid: "active"}
    assert active.keyid == second.keyid
    envelope = sign_envelope(b"{}", active.signer, keyid=active.keyid)
    public = serialization.load_pem_public_key(second.public_key_pem.encode())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(envelope.signatures[0].sig, envelope.pae())  # raises if wrong
    with factory.begin() as s:
        revoked = keys.revoke_key(s, second.keyid, reason="leaked", now=NOW)
    assert revoked.status == "revoked" and revoked.revocation_reason == "leaked"
    with factory.begin() as s, pytest.raises(Conflict):
        keys.active_signer(s)
    with factory.begin() as s, pytest.raises(NotFound):
        keys.revoke_key(s, "nope", reason="x", now=NOW)


def test_import_and_refusals(factory: sessionmaker[Session], tmp_path: Path) -> None:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with factory.begin() as s:
        imported = keys.add_key(s, keys_dir=tmp_path, private_key_pem=pem, activate=True, now=NOW)
    assert imported.algorithm == "ed25519" and imported.status == "active"
    with factory.begin() as s, pytest.raises(Conflict):
        keys.add_key(s, keys_dir=tmp_path, private_key_pem=pem, now=NOW)
    with factory.begin() as s, pytest.raises(InvalidInput):
        keys.add_key(s, keys_dir=tmp_path, now=NOW)
    with factory.begin() as s, pytest.raises(InvalidInput):
        keys.add_key(s, keys_dir=tmp_path, algorithm="rsa", now=NOW)
    with factory.begin() as s, pytest.raises(InvalidInput) as e:
        keys.add_key(s, keys_dir=tmp_path, private_key_pem="-----BEGIN nothing", now=NOW)
    assert "BEGIN" not in e.value.message
