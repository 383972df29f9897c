# SPDX-License-Identifier: Apache-2.0
"""Keyless conformance bundles (tests/assets): identity matching and result values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.errors import VerificationError
from attestor.sigstore_internals import embedded_trust_file
from attestor.verify import TrustedKey, Verifier
from attestor.verify._crypto import public_key_pem
from attestor.verify.bundle import Artifact, BundleVerifier, CertificateIdentity
from attestor.verify.trust import load_trusted_root, public_good

IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def cases(asset: Callable[[str], Path]) -> Path:
    return asset("conformance/bundle-verify")


@pytest.fixture(scope="module")
def production() -> BundleVerifier:
    return BundleVerifier(public_good("production"))


def _artifact(cases: Path) -> Artifact:
    return Artifact.from_bytes((cases / "a.txt").read_bytes())


def test_message_result(cases, production) -> None:
    raw = (cases / "happy-path-v0.3" / "bundle.sigstore.json").read_bytes()
    result = production.verify(
        raw, _artifact(cases), now=NOW, identity=CertificateIdentity(IDENTITY, ISSUER)
    )
    assert (result.signer, result.content) == ("keyless", "message")
    assert result.identity == IDENTITY
    assert result.issuer == ISSUER
    assert len(result.tlog_entries) == 1
    assert result.artifact_sha256 == hashlib.sha256((cases / "a.txt").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("identity", "ok"),
    [
        (CertificateIdentity(IDENTITY, ISSUER), True),
        (
            CertificateIdentity(
                r"https://github\.com/sigstore-conformance/.*", ISSUER, identity_regex=True
            ),
            True,
        ),
        (CertificateIdentity(IDENTITY, r"https://token\.actions\..*", issuer_regex=True), True),
        (CertificateIdentity(IDENTITY + "x", ISSUER), False),
        (CertificateIdentity(IDENTITY, "https://accounts.google.com"), False),
        (CertificateIdentity(r"https://github\.com/other/.*", ISSUER, identity_regex=True), False),
        # fullmatch: a prefix of the SAN is not a match.
        (CertificateIdentity(r"https://github\.com", ISSUER, identity_regex=True), False),
        (CertificateIdentity(IDENTITY, r"https://token", issuer_regex=True), False),
    ],
)
def test_identity_policy(cases, production, identity, ok) -> None:
    raw = (cases / "happy-path-v0.1" / "bundle.sigstore.json").read_bytes()
    if ok:
        result = production.verify(raw, _artifact(cases), now=NOW, identity=identity)
        assert (result.identity, result.issuer) == (IDENTITY, ISSUER)
    else:
        with pytest.raises(VerificationError):
            production.verify(raw, _artifact(cases), now=NOW, identity=identity)


def _any_predicate() -> Verifier:
    # The rules template needs a key; with_keys swaps in the certificate's.
    placeholder = ec.generate_private_key(ec.SECP256R1()).public_key()
    return Verifier(
        keys=[TrustedKey.from_pem(public_key_pem(placeholder))], any_predicate_type=True
    )


def test_dsse_result(cases) -> None:
    case = cases / "rekor2-dsse-happy-path"
    verifier = BundleVerifier(load_trusted_root(case / "trusted_root.json"))
    result = verifier.verify(
        (case / "bundle.sigstore.json").read_bytes(),
        _artifact(cases),
        now=NOW,
        identity=CertificateIdentity(IDENTITY, ISSUER),
        statements=_any_predicate(),
    )
    assert result.content == "dsse"
    assert result.payload_type == "application/vnd.in-toto+json"
    assert result.predicate_type == "https://slsa.dev/provenance/v1"
    assert result.statement is not None and result.statement.matched_subject is not None
    assert result.timestamps  # Rekor v2: the time comes from the TSA


def test_dsse_default_rules_check_the_predicate_schema(cases) -> None:
    # The case's SLSA v1 predicate lacks buildDefinition.externalParameters: the
    # Sigstore layer accepts the bundle, the statement verifier's default rules do not.
    case = cases / "rekor2-dsse-happy-path"
    verifier = BundleVerifier(load_trusted_root(case / "trusted_root.json"))
    raw = (case / "bundle.sigstore.json").read_bytes()
    identity = CertificateIdentity(IDENTITY, ISSUER)
    material = verifier.signing_material(raw, _artifact(cases), now=NOW, identity=identity)
    assert material.envelope is not None
    assert material.envelope.signatures[0].keyid == ""
    with pytest.raises(VerificationError, match="predicate invalid: .*externalParameters"):
        verifier.verify(raw, _artifact(cases), now=NOW, identity=identity)


def test_dsse_wrong_subject(cases) -> None:
    case = cases / "rekor2-dsse-happy-path"
    verifier = BundleVerifier(load_trusted_root(case / "trusted_root.json"))
    with pytest.raises(VerificationError, match="no subject has sha256"):
        verifier.verify(
            (case / "bundle.sigstore.json").read_bytes(),
            Artifact.from_bytes(b"something else"),
            now=NOW,
            identity=CertificateIdentity(IDENTITY, ISSUER),
        )


def test_staging_bundle_rejected_by_production(cases, production) -> None:
    raw = (cases / "bundle-from-wrong-instance_fail" / "bundle.sigstore.json").read_bytes()
    with pytest.raises(VerificationError):
        production.verify(
            raw, _artifact(cases), now=NOW, identity=CertificateIdentity(IDENTITY, ISSUER)
        )


def _root_with(doc_path: Path | None, mutate) -> BundleVerifier:
    raw = (
        doc_path.read_bytes()
        if doc_path is not None
        else embedded_trust_file("production", "trusted_root.json")
    )
    doc = json.loads(raw)
    mutate(doc)
    return BundleVerifier(load_trusted_root(json.dumps(doc).encode()))


def _set_all(doc, section: str, end: str | None = None, start: str | None = None) -> None:
    for item in doc[section]:
        valid_for = item["publicKey"]["validFor"] if "publicKey" in item else item["validFor"]
        if end is not None:
            valid_for["end"] = end
        if start is not None:
            valid_for["start"] = start


# happy-path-v0.1: integrated time 1689177396 = 2023-07-12T15:56:36Z.
@pytest.mark.parametrize(
    ("section", "kwargs", "reason"),
    [
        ("tlogs", {"end": "2023-07-12T15:56:35Z"}, "log key not valid"),
        ("certificateAuthorities", {"end": "2023-07-12T15:56:35Z"}, "certificate authority"),
        ("ctlogs", {"start": "2023-07-12T16:00:00Z"}, "CT log key not valid"),
    ],
)
def test_trust_root_validity_windows_enforced(cases, section, kwargs, reason) -> None:
    raw = (cases / "happy-path-v0.1" / "bundle.sigstore.json").read_bytes()
    identity = CertificateIdentity(IDENTITY, ISSUER)
    exact = _root_with(None, lambda d: _set_all(d, "tlogs", end="2023-07-12T15:56:36Z"))
    result = exact.verify(raw, _artifact(cases), now=NOW, identity=identity)  # closed interval
    assert (result.identity, len(result.tlog_entries)) == (IDENTITY, 1)
    verifier = _root_with(None, lambda d: _set_all(d, section, **kwargs))
    with pytest.raises(VerificationError, match=reason):
        verifier.verify(raw, _artifact(cases), now=NOW, identity=identity)


def test_tsa_validity_end_is_inclusive(cases) -> None:
    # rekor2-happy-path: the RFC 3161 genTime is 2025-06-12T12:02:20Z.
    case = cases / "rekor2-happy-path"
    raw = (case / "bundle.sigstore.json").read_bytes()
    identity = CertificateIdentity(IDENTITY, ISSUER)
    inclusive = _root_with(
        case / "trusted_root.json",
        lambda d: _set_all(d, "timestampAuthorities", end="2025-06-12T12:02:20Z"),
    )
    assert inclusive.verify(raw, _artifact(cases), now=NOW, identity=identity).timestamps
    before = _root_with(
        case / "trusted_root.json",
        lambda d: _set_all(d, "timestampAuthorities", end="2025-06-12T12:02:19Z"),
    )
    with pytest.raises(VerificationError, match="verified time"):
        before.verify(raw, _artifact(cases), now=NOW, identity=identity)


def test_signed_time_in_future_rejected(cases, production) -> None:
    raw = (cases / "happy-path-v0.3" / "bundle.sigstore.json").read_bytes()
    with pytest.raises(VerificationError, match="future"):
        production.verify(
            raw,
            _artifact(cases),
            now=datetime(2020, 1, 1, tzinfo=UTC),
            identity=CertificateIdentity(IDENTITY, ISSUER),
        )
