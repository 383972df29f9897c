# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from attestor.errors import InvalidInput
from attestor.verify._crypto import (
    key_algorithm,
    load_public_key,
    public_key_pem,
    verify_signature,
)

DATA = b"DSSEv1 3 t/x 4 data"


def _pem(private) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("curve", "digest", "name"),
    [
        (ec.SECP256R1(), hashes.SHA256(), "ecdsa-p256"),
        (ec.SECP384R1(), hashes.SHA384(), "ecdsa-p384"),
        (ec.SECP521R1(), hashes.SHA512(), "ecdsa-p521"),
    ],
)
def test_ecdsa_default_hash_per_curve(curve, digest, name):
    private = ec.generate_private_key(curve)
    key = load_public_key(_pem(private))
    assert key_algorithm(key) == name
    sig = private.sign(DATA, ec.ECDSA(digest))
    assert verify_signature(key, sig, DATA)
    assert not verify_signature(key, sig, DATA + b"!")
    # An explicit hash overrides the default.
    sig256 = private.sign(DATA, ec.ECDSA(hashes.SHA256()))
    assert verify_signature(key, sig256, DATA, hash_alg="sha256")


def test_ed25519_pure():
    private = ed25519.Ed25519PrivateKey.generate()
    key = load_public_key(_pem(private).decode())
    assert key_algorithm(key) == "ed25519"
    assert verify_signature(key, private.sign(DATA), DATA)
    assert not verify_signature(key, private.sign(DATA), DATA[:-1])


@pytest.mark.parametrize(
    "pad",
    [
        padding.PKCS1v15(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
    ],
    ids=["pkcs1v15", "pss-digest", "pss-max"],
)
def test_rsa_pkcs1v15_and_pss(rsa2048, pad):
    key = load_public_key(_pem(rsa2048))
    assert key_algorithm(key) == "rsa-2048"
    sig = rsa2048.sign(DATA, pad, hashes.SHA256())
    assert verify_signature(key, sig, DATA)
    assert not verify_signature(key, sig, b"other")


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rejects_weak_and_unsupported_keys():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(InvalidInput, match="1024 bits"):
        load_public_key(_pem(weak))
    with pytest.raises(InvalidInput, match="curve"):
        load_public_key(_pem(ec.generate_private_key(ec.SECP256K1())))
    with pytest.raises(InvalidInput, match="unsupported public key type"):
        load_public_key(_pem(ed448.Ed448PrivateKey.generate()))
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidInput, match="over"):
        load_public_key(b"x" * 20000)


@pytest.mark.parametrize("sig", [b"", b"\x00", b"\x30\x02\x02\x00", b"garbage" * 20])
def test_garbage_signatures_are_false_not_errors(sig):
    for private in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()):
        assert verify_signature(load_public_key(_pem(private)), sig, DATA) is False


def test_unknown_hash_alg_is_invalid_input():
    key = load_public_key(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(InvalidInput):
        verify_signature(key, b"\x30\x00", DATA, hash_alg="md5")


def test_public_key_pem_round_trip():
    pem = _pem(ec.generate_private_key(ec.SECP256R1())).decode()
    assert public_key_pem(load_public_key(pem)) == pem
