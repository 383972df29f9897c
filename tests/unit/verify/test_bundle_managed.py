# SPDX-License-Identifier: Apache-2.0
"""Managed-key Sigstore bundles: keys generated here, a fake one-leaf Rekor, tampering."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from attestor.errors import InvalidInput, VerificationError
from attestor.verify.bundle import Artifact, BundleVerifier, CertificateIdentity
from attestor.verify.trust import load_trusted_root, public_good
from tests.unit.verify.test_bundle_support import (
    FakeLog,
    dsse_bundle,
    encode,
    message_bundle,
    statement,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ARTIFACT = b"hello, attestor\n"


@pytest.fixture(scope="module")
def log() -> FakeLog:
    return FakeLog()


@pytest.fixture(scope="module")
def verifier(log: FakeLog) -> BundleVerifier:
    return BundleVerifier(load_trusted_root(log.trusted_root()))


@pytest.fixture(scope="module")
def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_message_bundle_with_log_entry_verifies(verifier, signer, log) -> None:
    bundle = encode(message_bundle(signer, ARTIFACT, log))
    for artifact in (Artifact.from_bytes(ARTIFACT), Artifact(Artifact.from_bytes(ARTIFACT).sha256)):
        result = verifier.verify(bundle, artifact, now=NOW, key=signer.public_key())
        assert result.signer == "key"
        assert result.content == "message"
        assert result.key_id is not None and len(result.key_id) == 64
        assert len(result.tlog_entries) == 1
        assert result.tlog_entries[0].kind == "hashedrekord"
        assert result.tlog_entries[0].integrated_time == datetime.fromtimestamp(1_700_000_000, UTC)
        assert result.tlog_entries[0].log_id == log.log_id.hex()


def test_dsse_bundle_with_log_entry_verifies(verifier, signer, log) -> None:
    payload = statement(ARTIFACT)
    result = verifier.verify(
        encode(dsse_bundle(signer, payload, log)),
        Artifact.from_bytes(ARTIFACT),
        now=NOW,
        key=signer.public_key(),
    )
    assert result.content == "dsse"
    assert result.payload == payload
    assert result.predicate_type == "https://slsa.dev/provenance/v1"


def test_ed25519_dsse_without_tlog_when_allowed(verifier) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    bundle = encode(dsse_bundle(key, statement(ARTIFACT)))
    result = verifier.verify(
        bundle, Artifact.from_bytes(ARTIFACT), now=NOW, key=key.public_key(), require_tlog=False
    )
    assert result.tlog_entries == ()
    with pytest.raises(VerificationError, match="no transparency log entry"):
        verifier.verify(bundle, Artifact.from_bytes(ARTIFACT), now=NOW, key=key.public_key())


def test_wrong_key_rejected(verifier, signer, log) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError, match="does not verify"):
        verifier.verify(
            encode(message_bundle(signer, ARTIFACT, log)),
            Artifact.from_bytes(ARTIFACT),
            now=NOW,
            key=other.public_key(),
        )


def test_tampered_artifact_rejected(verifier, signer, log) -> None:
    with pytest.raises(VerificationError, match="digest does not match"):
        verifier.verify(
            encode(message_bundle(signer, ARTIFACT, log)),
            Artifact.from_bytes(ARTIFACT + b"x"),
            now=NOW,
            key=signer.public_key(),
        )


def test_dsse_subject_mismatch_rejected(verifier, signer, log) -> None:
    with pytest.raises(VerificationError, match="no subject has sha256"):
        verifier.verify(
            encode(dsse_bundle(signer, statement(b"other"), log)),
            Artifact.from_bytes(ARTIFACT),
            now=NOW,
            key=signer.public_key(),
        )


def test_log_entry_for_another_signature_rejected(verifier, signer, log) -> None:
    good = message_bundle(signer, ARTIFACT, log)
    # A valid log entry for a different signature over the same artifact (CVE-2022-36056).
    other = message_bundle(signer, ARTIFACT, log)
    good["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    with pytest.raises(VerificationError, match="inconsistent"):
        verifier.verify(
            encode(good), Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
        )


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("inclusionPromise", "signedEntryTimestamp"), base64.b64encode(b"0" * 70).decode(), "SET"),
        (("inclusionProof", "rootHash"), base64.b64encode(b"\x01" * 32).decode(), "root hash"),
        (("inclusionProof", "treeSize"), "2", "inclusion proof"),
        (("integratedTime",), "1700000001", "SET"),
        (("logId", "keyId"), base64.b64encode(b"\x02" * 32).decode(), "not a log of the trusted"),
    ],
)
def test_tampered_log_entry_rejected(verifier, signer, log, path, value, reason) -> None:
    bundle = message_bundle(signer, ARTIFACT, log)
    node = bundle["verificationMaterial"]["tlogEntries"][0]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(VerificationError, match=reason):
        verifier.verify(
            encode(bundle), Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
        )


def test_bad_checkpoint_signature_rejected(verifier, signer, log) -> None:
    bundle = message_bundle(signer, ARTIFACT, log)
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace("\n1\n", "\n2\n")
    with pytest.raises(VerificationError, match="checkpoint"):
        verifier.verify(
            encode(bundle), Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
        )


def test_log_unknown_to_trust_root_rejected(signer, log) -> None:
    production = BundleVerifier(public_good("production"))
    with pytest.raises(VerificationError, match="not a log of the trusted root"):
        production.verify(
            encode(message_bundle(signer, ARTIFACT, log)),
            Artifact.from_bytes(ARTIFACT),
            now=NOW,
            key=signer.public_key(),
        )


def test_integrated_time_in_future_rejected(verifier, signer, log) -> None:
    with pytest.raises(VerificationError, match="in the future"):
        verifier.verify(
            encode(message_bundle(signer, ARTIFACT, log)),
            Artifact.from_bytes(ARTIFACT),
            now=datetime(2023, 1, 1, tzinfo=UTC),
            key=signer.public_key(),
        )


def test_certificate_bundle_with_key_rejected(verifier, signer, log) -> None:
    bundle = message_bundle(signer, ARTIFACT, log)
    bundle["verificationMaterial"] = {
        "certificate": {"rawBytes": base64.b64encode(b"not a cert").decode()},
        "tlogEntries": bundle["verificationMaterial"]["tlogEntries"],
    }
    with pytest.raises(VerificationError, match="certificate"):
        verifier.verify(
            encode(bundle), Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
        )


def test_key_bundle_with_identity_rejected(verifier, signer, log) -> None:
    with pytest.raises(VerificationError, match="signed with a key"):
        verifier.verify(
            encode(message_bundle(signer, ARTIFACT, log)),
            Artifact.from_bytes(ARTIFACT),
            now=NOW,
            identity=CertificateIdentity(identity="a@example.com", issuer="https://issuer"),
        )


def test_identity_and_key_together_is_misuse(verifier, signer) -> None:
    with pytest.raises(InvalidInput):
        verifier.verify(b"{}", Artifact.from_bytes(ARTIFACT), now=NOW)


def test_unknown_media_type_and_extra_member_rejected(verifier, signer, log) -> None:
    bundle = message_bundle(signer, ARTIFACT, log)
    for mutate, reason in (
        (
            lambda b: b.__setitem__(
                "mediaType", "application/vnd.dev.sigstore.bundle+json;version=9"
            ),
            "mediaType",
        ),
        (lambda b: b.__setitem__("extra", 1), "extra"),
    ):
        doc = copy.deepcopy(bundle)
        mutate(doc)
        with pytest.raises(VerificationError, match=reason):
            verifier.verify(
                encode(doc), Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
            )


def test_ed25519_message_needs_artifact_bytes(verifier) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "messageSignature": {"signature": base64.b64encode(key.sign(ARTIFACT)).decode()},
    }
    raw = json.dumps(bundle).encode()
    ok = verifier.verify(
        raw, Artifact.from_bytes(ARTIFACT), now=NOW, key=key.public_key(), require_tlog=False
    )
    assert ok.content == "message"
    with pytest.raises(VerificationError, match="needs the artifact"):
        verifier.verify(
            raw,
            Artifact(Artifact.from_bytes(ARTIFACT).sha256),
            now=NOW,
            key=key.public_key(),
            require_tlog=False,
        )
