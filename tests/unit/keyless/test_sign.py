# SPDX-License-Identifier: Apache-2.0
"""Keyless helpers that need no Sigstore services: token checks, envelope, certificate."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.errors import ConfigError, InvalidInput
from attestor.keyless import (
    dsse_envelope,
    parse_identity_token,
    signing_certificate_pem,
)

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime.now(UTC)


def _token(**claims: object) -> str:
    base: dict[str, object] = {
        "iss": "https://oidc.attestor.test",
        "sub": "https://kubernetes.io/namespaces/a/serviceaccounts/b",
        "aud": "sigstore",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=10)).timestamp()),
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, KEY, algorithm="ES256")


def test_good_token_parses() -> None:
    token = parse_identity_token(_token() + "\n")
    assert token.identity == "https://kubernetes.io/namespaces/a/serviceaccounts/b"
    assert token.issuer == "https://oidc.attestor.test"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "someone-else"}, "malformed or missing claims"),
        ({"sub": None}, "malformed or missing claims"),
        ({"exp": int((NOW - timedelta(minutes=1)).timestamp())}, "malformed or missing claims"),
    ],
    ids=["audience", "no-sub", "expired"],
)
def test_bad_token_is_one_config_line_without_the_token(claims, why) -> None:
    token = _token(**claims)
    with pytest.raises(ConfigError, match=why) as excinfo:
        parse_identity_token(token)
    message = str(excinfo.value)
    assert "\n" not in message
    assert token not in message


def test_not_a_jwt() -> None:
    with pytest.raises(ConfigError, match="identity token unusable"):
        parse_identity_token("not-a-jwt")


def _cert_der() -> bytes:
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name.from_rfc4514_string("CN=test"))
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .sign(KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


CERT_DER = _cert_der()
BUNDLE = {
    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "verificationMaterial": {"certificate": {"rawBytes": base64.b64encode(CERT_DER).decode()}},
    "dsseEnvelope": {
        "payload": base64.b64encode(b'{"_type":"x"}').decode(),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"sig": base64.b64encode(b"\x30\x01sig").decode()}],
    },
}


def test_envelope_is_cosign_shaped() -> None:
    envelope = dsse_envelope(BUNDLE)
    assert envelope.to_dict() == {
        "payloadType": "application/vnd.in-toto+json",
        "payload": BUNDLE["dsseEnvelope"]["payload"],  # type: ignore[index]
        "signatures": [{"keyid": "", "sig": base64.b64encode(b"\x30\x01sig").decode()}],
    }


def test_envelope_missing_or_malformed() -> None:
    with pytest.raises(InvalidInput, match="no dsseEnvelope"):
        dsse_envelope({"messageSignature": {}})
    bad = {"dsseEnvelope": {"payload": "!!", "payloadType": "t", "signatures": [{"sig": "AA=="}]}}
    with pytest.raises(InvalidInput):
        dsse_envelope(bad)


def test_certificate_pem_from_v03_and_chain() -> None:
    pem = signing_certificate_pem(BUNDLE)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == CERT_DER
    raw = BUNDLE["verificationMaterial"]["certificate"]["rawBytes"]  # type: ignore[index]
    chain = {
        "verificationMaterial": {"x509CertificateChain": {"certificates": [{"rawBytes": raw}]}}
    }
    assert signing_certificate_pem(chain) == pem


@pytest.mark.parametrize(
    "bundle",
    [
        {},
        {"verificationMaterial": {"publicKey": {"hint": "k"}}},
        {"verificationMaterial": {"certificate": {"rawBytes": "AAAA"}}},
        {"verificationMaterial": {"certificate": {"rawBytes": "not base64!"}}},
    ],
    ids=["no-material", "key-hint", "not-a-cert", "bad-base64"],
)
def test_certificate_missing_or_malformed(bundle) -> None:
    with pytest.raises(InvalidInput):
        signing_certificate_pem(bundle)
