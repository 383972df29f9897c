# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

from attestor.errors import ConfigError, InvalidInput
from attestor.signing.keys import (
    generate_key_file,
    import_private_key_pem,
    load_signer,
    public_key_info,
)
from attestor.verify._crypto import load_public_key, verify_signature


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_generate_key_file_modes_uri_and_signing(tmp_path, algorithm):
    keys = tmp_path / "data" / "keys"
    uri, info = generate_key_file(keys, algorithm)

    assert uri.startswith("file:///")
    path = keys / f"{info.keyid}.pem"
    assert uri == path.resolve().as_uri()
    assert _mode(keys) == 0o700
    assert _mode(path) == 0o600
    assert [p.name for p in keys.iterdir()] == [path.name]  # no temp file left behind
    assert info.algorithm == algorithm
    assert info.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")

    signer = load_signer(uri)
    sig = bytes.fromhex(signer.sign(b"data").signature)
    assert verify_signature(load_public_key(info.public_key_pem), sig, b"data")
    # A plain path names the same key.
    assert load_signer(str(path)).public_key.keyid == info.keyid


def test_generate_tightens_an_existing_directory(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    generate_key_file(keys)
    assert _mode(keys) == 0o700


def test_private_key_file_mode_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        uri, info = generate_key_file(tmp_path)
    finally:
        os.umask(old)
    assert _mode(tmp_path / f"{info.keyid}.pem") == 0o600


def test_keyid_is_securesystemslib_default_keyid(tmp_path):
    _, info = generate_key_file(tmp_path, "ecdsa-p256")
    # Recompute by hand: sha256 of canonical JSON of {keytype, scheme, keyval}.
    by_hand = hashlib.sha256(
        encode_canonical(
            {
                "keytype": "ecdsa",
                "scheme": "ecdsa-sha2-nistp256",
                "keyval": {"public": info.public_key_pem},
            }
        ).encode()
    ).hexdigest()
    assert info.keyid == by_hand
    key = serialization.load_pem_public_key(info.public_key_pem.encode())
    assert SSlibKey.from_crypto(key).keyid == info.keyid


def test_ed25519_keyid_matches_securesystemslib_generated_signer():
    signer = CryptoSigner.generate_ed25519()
    pem = (
        signer.public_key._crypto_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert public_key_info(pem).keyid == signer.public_key.keyid


def test_import_plain_and_encrypted_pem(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    uri, info = import_private_key_pem(tmp_path / "a", plain)
    assert load_signer(uri).public_key.keyid == info.keyid

    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    uri2, info2 = import_private_key_pem(tmp_path / "b", encrypted, password=b"pw")
    assert info2 == info
    stored = (tmp_path / "b" / f"{info.keyid}.pem").read_bytes()
    assert b"ENCRYPTED" not in stored and b"BEGIN PRIVATE KEY" in stored
    assert _mode(tmp_path / "b" / f"{info.keyid}.pem") == 0o600

    with pytest.raises(InvalidInput):
        import_private_key_pem(tmp_path / "c", encrypted, password=b"wrong")
    with pytest.raises(InvalidInput):
        import_private_key_pem(tmp_path / "c", encrypted)


def test_import_refuses_to_overwrite(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    import_private_key_pem(tmp_path, pem)
    with pytest.raises(InvalidInput, match="already exists"):
        import_private_key_pem(tmp_path, pem)
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa", "p384"],
)
def test_import_rejects_other_algorithms(tmp_path, make):
    pem = make().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match="must be one of"):
        import_private_key_pem(tmp_path, pem)
    assert not any(tmp_path.iterdir())


def test_import_rejects_garbage_without_echoing_it(tmp_path):
    with pytest.raises(InvalidInput) as err:
        import_private_key_pem(tmp_path, b"-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n")
    assert "SECRETSTUFF" not in str(err.value)


def test_generate_rejects_unknown_algorithm(tmp_path):
    with pytest.raises(InvalidInput):
        generate_key_file(tmp_path, "rsa-2048")


def test_load_signer_errors(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_signer(str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError):
        load_signer(bad.as_uri())
    with pytest.raises(ConfigError, match="must be local"):
        load_signer("file://otherhost/key.pem")
    # A KMS-style URI goes to securesystemslib, which needs the public key.
    with pytest.raises(ConfigError, match="needs its public key"):
        load_signer("gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1")


def test_load_signer_dispatches_securesystemslib_schemes(tmp_path):
    # securesystemslib's own file2: scheme proves the SIGNER_FOR_URI_SCHEME path.
    uri, info = generate_key_file(tmp_path)
    path = uri.removeprefix("file://")
    public = SSlibKey.from_crypto(load_public_key(info.public_key_pem))
    signer = load_signer(f"file2:{path}", public_key=public)
    assert signer.public_key.keyid == info.keyid


def test_public_key_info_rejects_non_keys():
    with pytest.raises(InvalidInput):
        public_key_info("nope")
    assert json.dumps(public_key_info(_p256_pem()).__dict__)  # plain strings only


def _p256_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_signer_public_key_info(tmp_path, algorithm):
    from attestor.signing.keys import signer_public_key_info

    uri, info = generate_key_file(tmp_path, algorithm)
    assert signer_public_key_info(load_signer(uri)) == info
