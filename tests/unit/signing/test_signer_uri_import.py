# SPDX-License-Identifier: Apache-2.0
"""Registering an existing key by signer URI: it must load, match and sign; nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.signer import CryptoSigner, SSlibKey

from attestor.errors import InvalidInput
from attestor.signing.keys import _probe, import_signer_uri, load_signer, public_key_info
from tests.harness.keyfiles import PrivateKey, write_private_key


def _public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    "key", [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
)
def test_file_uri_gives_its_public_key_and_writes_nothing(tmp_path: Path, key: PrivateKey) -> None:
    path = write_private_key(tmp_path / "signing-key.pem", key)
    before = sorted(tmp_path.iterdir())
    uri, info = import_signer_uri(path.as_uri())
    assert uri == path.as_uri()
    assert info == public_key_info(_public_pem(key))
    assert sorted(tmp_path.iterdir()) == before
    # The stored URI loads back into a signer of the same key.
    assert load_signer(uri).public_key.keyid == info.keyid


def test_file_uri_with_matching_public_key_is_accepted(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_private_key(tmp_path / "k.pem", key)
    _, info = import_signer_uri(path.as_uri(), _public_pem(key))
    assert info.algorithm == "ecdsa-p256"


def test_file_uri_with_another_public_key_is_refused(tmp_path: Path) -> None:
    path = write_private_key(tmp_path / "k.pem", ec.generate_private_key(ec.SECP256R1()))
    other = _public_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(InvalidInput, match="does not match"):
        import_signer_uri(path.as_uri(), other)


def test_non_file_scheme_is_probed_with_its_public_key(tmp_path: Path) -> None:
    # file2: is securesystemslib's own file signer, dispatched like a KMS URI.
    key = ed25519.Ed25519PrivateKey.generate()
    path = write_private_key(tmp_path / "k.pem", key)
    uri, info = import_signer_uri(f"file2:{path}", _public_pem(key))
    assert uri == f"file2:{path}" and info == public_key_info(_public_pem(key))
    with pytest.raises(InvalidInput, match="public_key_pem"):
        import_signer_uri(f"file2:{path}")
    wrong = _public_pem(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(InvalidInput, match="does not match public key"):
        import_signer_uri(f"file2:{path}", wrong)


def test_probe_catches_a_signer_that_signs_with_another_key() -> None:
    # What a KMS URI naming the wrong key looks like: it loads, then signs wrongly.
    private = ec.generate_private_key(ec.SECP256R1())
    signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))
    expected = SSlibKey.from_crypto(ec.generate_private_key(ec.SECP256R1()).public_key())
    _probe(signer, signer.public_key, "gcpkms")  # the right key passes
    with pytest.raises(InvalidInput, match="cannot sign with the key of public_key_pem"):
        _probe(signer, expected, "gcpkms")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/etc/attestor/keys/k.pem", "must be file:///absolute"),
        ("keys/k.pem", "must be file:///absolute"),
        ("file:keys/k.pem", "file:///absolute"),
        ("file://host.example/k.pem", "file:///absolute"),
        ("https://example.com/k.pem", "must be file:///absolute"),
        ("file:///nonexistent/attestor/k.pem", "No such file"),
        ("x" * 3000, "over 2048"),
    ],
)
def test_unusable_uris_are_invalid_input(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        import_signer_uri(uri)


def test_a_file_that_is_not_a_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("-----BEGIN SECRET NOTES-----\n")
    with pytest.raises(InvalidInput) as e:
        import_signer_uri(path.as_uri())
    assert "not a PEM private key" in e.value.message and "SECRET" not in e.value.message


def test_special_files_neither_hang_nor_exhaust(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes: a blocking open would hang forever
    with pytest.raises(InvalidInput, match="not a regular file"):
        import_signer_uri(fifo.as_uri())
    with pytest.raises(InvalidInput, match="not a regular file"):
        import_signer_uri("file:///dev/zero")
    with pytest.raises(InvalidInput, match="Is a directory|not a regular file"):
        import_signer_uri(tmp_path.as_uri())
