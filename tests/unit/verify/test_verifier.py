# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope, Signature
from attestor.errors import ConfigError, InvalidInput, VerificationError
from attestor.verify import TrustedKey, Verifier
from attestor.verify.dsse import verify_envelope_signatures
from tests.interop.samples import LAYER_SHA256, require_slsa_schema, slsa_statement
from tests.interop.samples import statement_bytes as slsa_bytes
from tests.unit.verify._helpers import (
    ARTIFACT,
    TEST_PREDICATE,
    payload,
    sign,
    statement,
    trusted,
    verifier,
)


@pytest.fixture(scope="module")
def signers():
    return [
        CryptoSigner.generate_ecdsa(),
        CryptoSigner.generate_ed25519(),
        CryptoSigner.generate_ecdsa(),
    ]


def test_happy_path_result(signers):
    s = signers[0]
    envelope = sign(payload(statement()), s)
    result = verifier([trusted(s)]).verify_envelope(envelope.to_json(), artifact_digest=ARTIFACT)
    assert result.keys == (s.public_key.keyid,)
    assert result.predicate_type == TEST_PREDICATE
    assert result.statement == statement()
    assert result.payload_sha256 == hashlib.sha256(envelope.payload).hexdigest()
    assert result.envelope_sha256 == hashlib.sha256(envelope.to_json()).hexdigest()
    assert result.subjects[0].sha256 == ARTIFACT
    assert result.matched_subject == result.subjects[0]
    # sha256:-prefixed digests and mappings are accepted too.
    again = verifier([trusted(s)]).verify_envelope(
        envelope.to_dict(), artifact_digest=f"sha256:{ARTIFACT}"
    )
    assert again == result


def test_keyid_is_only_a_hint(signers):
    s = signers[1]
    envelope = sign(payload(statement()), s)
    lying = Envelope(
        envelope.payload_type,
        envelope.payload,
        (Signature("someone-else", envelope.signatures[0].sig),),
    )
    keys = [trusted(signers[0]), trusted(s, keyid="local-name")]
    assert verifier(keys).verify_envelope(lying.to_json()).keys == ("local-name",)


def test_threshold_counts_distinct_keys(signers):
    a, b, c = signers
    data = payload(statement())
    keys = [trusted(a), trusted(b), trusted(c)]
    two = sign(data, a, b)
    assert set(verifier(keys, threshold=2).verify_envelope(two.to_json()).keys) == {
        a.public_key.keyid,
        b.public_key.keyid,
    }
    # The same key signing twice (ECDSA gives a new signature each time) counts once.
    twice = sign(data, a, a)
    with pytest.raises(VerificationError, match="1 of 2 required"):
        verifier(keys, threshold=2).verify_envelope(twice.to_json())
    with pytest.raises(VerificationError, match="2 of 3 required"):
        verifier(keys, threshold=3).verify_envelope(two.to_json())


def test_untrusted_or_tampered_signatures_fail(signers):
    a, b, _ = signers
    envelope = sign(payload(statement()), a)
    with pytest.raises(VerificationError, match="0 of 1"):
        verifier([trusted(b)]).verify_envelope(envelope.to_json())
    tampered = Envelope(envelope.payload_type, envelope.payload + b" ", envelope.signatures)
    with pytest.raises(VerificationError):
        verifier([trusted(a)]).verify_envelope(tampered.to_json())
    # The signature covers the payloadType too (PAE).
    retyped = Envelope("application/json", envelope.payload, envelope.signatures)
    with pytest.raises(VerificationError, match="0 of 1"):
        verifier([trusted(a)]).verify_envelope(retyped.to_json())


def test_revoked_envelope(signers):
    envelope = sign(payload(statement()), signers[0])
    v = verifier([trusted(signers[0])], revoked_statements=frozenset({envelope.pae_sha256()}))
    with pytest.raises(VerificationError, match="revoked"):
        v.verify_envelope(envelope.to_json())


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (statement(extra=1), "unknown member"),
        (statement(_type="https://in-toto.io/Statement/v0.1"), "_type must be"),
        (statement(subject=[]), "non-empty list"),
        (statement(subject=[{"name": "x", "digest": {"sha512": "ab"}}]), "no lowercase sha256"),
        (statement(subject=[{"name": "x", "digest": {"sha256": ARTIFACT.upper()}}]), "sha256"),
        # "$" in a match() would accept a final newline; the rule is 64 hex, nothing else.
        (statement(subject=[{"name": "x", "digest": {"sha256": ARTIFACT + "\n"}}]), "sha256"),
        (statement(subject=[{"name": 1, "digest": {"sha256": ARTIFACT}}]), "name must be"),
        (statement(predicateType="https://other/v1"), "not allowed"),
        (statement(predicate=[]), "predicate must be an object"),
        (statement(predicate={"payloadType": "t"}), r"predicate invalid: .*\$"),
        ({k: v for k, v in statement().items() if k != "predicateType"}, "predicateType"),
    ],
)
def test_statement_rules(signers, doc, message):
    envelope = sign(payload(doc), signers[0])
    with pytest.raises(VerificationError, match=message):
        verifier([trusted(signers[0])]).verify_envelope(envelope.to_json())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"_type":"a","_type":"b"}', "duplicate JSON key"),
        (b'{"x": NaN}', "non-standard JSON constant"),
        (b"\xff", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[]", "expected an object"),
    ],
)
def test_payload_json_rules(signers, data, message):
    envelope = sign(data, signers[0])
    with pytest.raises(VerificationError, match=message):
        verifier([trusted(signers[0])]).verify_envelope(envelope.to_json())


def test_payload_type_must_be_in_toto(signers):
    envelope = sign(payload(statement()), signers[0], payload_type="application/json")
    with pytest.raises(VerificationError, match="payloadType must be"):
        verifier([trusted(signers[0])]).verify_envelope(envelope.to_json())


def test_artifact_digest_must_match_a_subject(signers):
    envelope = sign(payload(statement()), signers[0])
    with pytest.raises(VerificationError, match="no subject has sha256"):
        verifier([trusted(signers[0])]).verify_envelope(
            envelope.to_json(), artifact_digest="0" * 64
        )
    with pytest.raises(InvalidInput, match="not sha256"):
        verifier([trusted(signers[0])]).verify_envelope(
            envelope.to_json(), artifact_digest="md5:00"
        )


def test_unparseable_envelope_is_invalid_input(signers):
    with pytest.raises(InvalidInput):
        verifier([trusted(signers[0])]).verify_envelope(b"{}")


def test_constructor_fails_closed(signers):
    a, b, _ = signers
    with pytest.raises(ConfigError, match="at least one"):
        Verifier(keys=[])
    with pytest.raises(ConfigError, match="listed twice"):
        verifier([trusted(a), trusted(a, keyid="alias")])
    with pytest.raises(ConfigError, match="threshold"):
        verifier([trusted(a)], threshold=2)
    with pytest.raises(ConfigError, match="threshold"):
        verifier([trusted(a)], threshold=0)
    with pytest.raises(ConfigError, match="must not be empty"):
        verifier([trusted(a)], allowed_predicate_types=frozenset())
    with pytest.raises(ConfigError, match="no schema"):
        Verifier(keys=[trusted(a)], allowed_predicate_types=frozenset({"https://x/v1"}))


def test_verify_envelope_signatures_direct(signers):
    a, b, _ = signers
    envelope = sign(b"{}", a)
    assert verify_envelope_signatures(envelope, [trusted(b), trusted(a)]) == (trusted(a),)
    with pytest.raises(VerificationError, match="at least 1"):
        verify_envelope_signatures(envelope, [trusted(a)], threshold=0)
    with pytest.raises(VerificationError, match="no trusted keys"):
        verify_envelope_signatures(envelope, [])
    with pytest.raises(VerificationError, match="can never be met"):
        verify_envelope_signatures(envelope, [trusted(a)], threshold=2)


def test_trusted_key_from_pem_defaults_to_securesystemslib_keyid(tmp_path):
    from attestor.signing.keys import generate_key_file

    _, info = generate_key_file(tmp_path)
    key = TrustedKey.from_pem(info.public_key_pem)
    assert (key.keyid, key.algorithm) == (info.keyid, "ecdsa-p256")
    assert TrustedKey.from_pem(info.public_key_pem, keyid="mine").keyid == "mine"


def test_slsa_provenance_default_verifier(signers):
    require_slsa_schema()
    a = signers[0]
    v = Verifier(keys=[trusted(a)])
    ok = sign(slsa_bytes(slsa_statement()), a)
    assert v.verify_envelope(ok.to_json(), artifact_digest=LAYER_SHA256).predicate_type == (
        "https://slsa.dev/provenance/v1"
    )
    broken = slsa_statement()
    broken["predicate"] = {"buildDefinition": 1}
    with pytest.raises(VerificationError, match="predicate invalid"):
        v.verify_envelope(sign(slsa_bytes(broken), a).to_json())
    assert json.loads(ok.payload)["predicateType"] == "https://slsa.dev/provenance/v1"


def test_trusted_key_refuses_non_keys():
    with pytest.raises(InvalidInput):
        TrustedKey(keyid="k", public_key="not a key", algorithm="x")  # type: ignore[arg-type]


def test_trusted_key_refuses_a_curve_the_verifier_cannot_check():
    # secp256k1 is a valid ECDSA key, but no scheme here verifies with it: the
    # key is refused when loaded, with the domain error, not at verification.
    key = ec.generate_private_key(ec.SECP256K1()).public_key()
    with pytest.raises(InvalidInput, match="unsupported ECDSA curve secp256k1"):
        TrustedKey(keyid="k", public_key=key, algorithm="x")
