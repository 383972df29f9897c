# SPDX-License-Identifier: Apache-2.0
"""The verifier rejects revoked attestations (our real layer statement), and only
attestations that are otherwise valid are ever reported as revoked."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope, Signature
from attestor.errors import ConfigError, VerificationError
from attestor.revocation import (
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    RevocationSet,
    SubjectTarget,
    TimeWindowTarget,
)
from attestor.signing.dsse import sign_envelope
from attestor.verify import Verifier, attestation_metas
from tests.unit.revocation._helpers import IMAGE, LAYER, T0, layer_statement, rev, trusted

SIGNER = CryptoSigner.generate_ecdsa()
OTHER = CryptoSigner.generate_ecdsa()
KEYID = SIGNER.public_key.keyid


@pytest.fixture(scope="module")
def envelope():
    return sign_envelope(layer_statement(), SIGNER, keyid=KEYID).to_json()


def _verifier(*revocations, keys=(SIGNER,)):
    return Verifier(keys=[trusted(s) for s in keys], revocations=RevocationSet(revocations))


def test_unrevoked_passes_and_version_is_exposed(envelope):
    v = _verifier(rev(3, SubjectTarget("sha256:" + "0" * 64)))
    result = v.verify_envelope(envelope, artifact_digest=LAYER)
    assert result.keys == (KEYID,)
    assert v.revocation_version == 3
    assert Verifier(keys=[trusted(SIGNER)]).revocation_version == 0


def test_metas_come_from_the_verified_statement(envelope):
    result = Verifier(keys=[trusted(SIGNER)]).verify_envelope(envelope)
    (meta,) = attestation_metas(
        result.statement,
        keyids=result.keys,
        pae_sha256=result.pae_sha256,
        subject_sha256s=[s.sha256 for s in result.subjects],
    )
    assert (meta.layer_digest, meta.image_digest, meta.keyid) == (LAYER, IMAGE, KEYID)
    assert (meta.policy_id, meta.policy_version, meta.issued_at) == ("dev", "1", T0)
    assert meta.pae_sha256 == result.pae_sha256 and meta.attestation_id is None


@pytest.mark.parametrize(
    "target",
    [
        SubjectTarget(LAYER),
        ImageTarget(IMAGE),
        KeyTarget(KEYID),
        PolicyVersionTarget("dev", "1"),
        TimeWindowTarget(not_before=T0 - timedelta(hours=1), not_after=T0 + timedelta(hours=1)),
        TimeWindowTarget(not_before=T0, keyid=KEYID),
        "attestation",
    ],
)
def test_each_kind_revokes(envelope, target):
    if target == "attestation":
        digest = Verifier(keys=[trusted(SIGNER)]).verify_envelope(envelope).pae_sha256
        target = AttestationTarget("6f1c2d9e-0000-4000-8000-00000000000a", digest)
    v = _verifier(rev(4, target, reason="builder compromised"))
    with pytest.raises(VerificationError, match="^revoked: builder compromised$") as err:
        v.verify_envelope(envelope, artifact_digest=LAYER)
    assert err.value.detail["revoked"] is True
    assert err.value.detail["revocation"]["sequence"] == 4
    assert err.value.detail["revocation"]["target"]["kind"] == target.kind


@pytest.mark.parametrize(
    "target",
    [
        PolicyVersionTarget("dev", "2"),
        TimeWindowTarget(not_after=T0),  # half-open: finishedOn == not_after is outside
        TimeWindowTarget(not_before=T0, keyid="someone-else"),
        KeyTarget("someone-else"),
    ],
)
def test_near_misses_do_not_revoke(envelope, target):
    v = _verifier(rev(1, target))
    result = v.verify_envelope(envelope, artifact_digest=LAYER)
    # Verified as the plain verifier does, with the near miss loaded but not matched.
    plain = Verifier(keys=[trusted(SIGNER)]).verify_envelope(envelope, artifact_digest=LAYER)
    assert (result.keys, result.pae_sha256) == ((KEYID,), plain.pae_sha256)
    assert LAYER in ["sha256:" + s.sha256 for s in result.subjects]
    assert v.revocation_version == 1


def test_forgery_is_reported_as_forgery_not_revoked(envelope):
    v = _verifier(rev(1, SubjectTarget(LAYER)), keys=(OTHER,))
    with pytest.raises(VerificationError) as err:
        v.verify_envelope(envelope)
    assert "revoked" not in err.value.detail and "revoked" not in err.value.message


def test_wrong_artifact_is_reported_before_revocation(envelope):
    v = _verifier(rev(1, KeyTarget(KEYID)))
    with pytest.raises(VerificationError) as err:
        v.verify_envelope(envelope, artifact_digest="sha256:" + "0" * 64)
    assert "revoked" not in err.value.detail


def test_a_revoked_cosigner_does_not_depend_on_signature_order():
    payload = layer_statement()
    a = sign_envelope(payload, SIGNER, keyid=KEYID).signatures[0]
    b = sign_envelope(payload, OTHER, keyid=OTHER.public_key.keyid).signatures[0]
    v = _verifier(rev(1, KeyTarget(KEYID)), keys=(SIGNER, OTHER))
    for sigs in ((a, b), (b, a)):
        env = Envelope("application/vnd.in-toto+json", payload, sigs).to_json()
        # The unrevoked key meets the threshold of 1 on its own: verified.
        assert v.verify_envelope(env).keys == (OTHER.public_key.keyid,)
    # Alone, the revoked key's signature is reported as revoked, not unknown.
    with pytest.raises(VerificationError, match="^revoked: test$"):
        v.verify_envelope(Envelope("application/vnd.in-toto+json", payload, (a,)).to_json())
    # With a threshold of 2, the revoked key is needed: revoked.
    v2 = Verifier(
        keys=[trusted(SIGNER), trusted(OTHER)],
        threshold=2,
        revocations=RevocationSet([rev(1, KeyTarget(KEYID))]),
    )
    with pytest.raises(VerificationError, match="^revoked"):
        v2.verify_envelope(Envelope("application/vnd.in-toto+json", payload, (b, a)).to_json())


def _reserialized(doc: dict) -> bytes:
    # Members in another order, other whitespace, URL-safe unpadded base64:
    # all accepted by DSSE parsers, none of it signed.
    def b64url(value: str) -> str:
        return base64.urlsafe_b64encode(base64.b64decode(value)).decode().rstrip("=")

    signatures = [{"sig": b64url(s["sig"]), "keyid": s["keyid"]} for s in doc["signatures"]]
    again = {"signatures": signatures, "payload": b64url(doc["payload"])}
    again["payloadType"] = doc["payloadType"]
    return json.dumps(again, indent=3).encode()


def _variants() -> dict[str, bytes]:
    payload = layer_statement()
    ours = sign_envelope(payload, SIGNER, keyid=KEYID).signatures[0]
    cosig = sign_envelope(payload, OTHER, keyid=OTHER.public_key.keyid).signatures[0]
    junk = Signature(keyid="junk", sig=b"\x01" * 64)
    in_toto = "application/vnd.in-toto+json"
    revoked = Envelope(in_toto, payload, (ours, cosig))
    return {
        "revoked": revoked.to_json(),
        "keyid changed": Envelope(in_toto, payload, (replace(ours, keyid="x"),)).to_json(),
        "keyid dropped": Envelope(in_toto, payload, (replace(ours, keyid=""),)).to_json(),
        "junk signature appended": Envelope(in_toto, payload, (ours, cosig, junk)).to_json(),
        "signatures reordered": Envelope(in_toto, payload, (cosig, ours)).to_json(),
        "co-signature removed": Envelope(in_toto, payload, (ours,)).to_json(),
        "JSON re-serialized": _reserialized(revoked.to_dict()),
    }


@pytest.mark.parametrize("variant", list(_variants()))
def test_a_revoked_attestation_stays_revoked_however_reserialized(variant):
    """The target is taken from the envelope the server stored; the verifier gets
    a copy changed only in what no signature covers."""
    envelopes = _variants()
    plain = Verifier(keys=[trusted(SIGNER)])
    stored = plain.verify_envelope(envelopes["revoked"])
    copy = plain.verify_envelope(envelopes[variant])
    # The copy really is another envelope, and really verifies.
    assert variant == "revoked" or envelopes[variant] != envelopes["revoked"]
    assert copy.keys == (KEYID,) and copy.pae_sha256 == stored.pae_sha256
    target = AttestationTarget("6f1c2d9e-0000-4000-8000-00000000000b", stored.pae_sha256)
    v = _verifier(rev(9, target, reason="withdrawn"))
    with pytest.raises(VerificationError, match="^revoked: withdrawn$") as err:
        v.verify_envelope(envelopes[variant], artifact_digest=LAYER)
    assert err.value.detail["revocation"]["target"] == target.to_dict()
    assert err.value.detail["pae_sha256"] == stored.pae_sha256
    # The pre-check list of the Verifier uses the same identity.
    listed = Verifier(keys=[trusted(SIGNER)], revoked_statements=frozenset({stored.pae_sha256}))
    with pytest.raises(VerificationError, match="is revoked"):
        listed.verify_envelope(envelopes[variant])


def test_pae_sha256_is_the_hash_of_the_pae():
    payload = layer_statement()
    envelope = sign_envelope(payload, SIGNER, keyid=KEYID)
    expected = hashlib.sha256(
        b"DSSEv1 28 application/vnd.in-toto+json %d %b" % (len(payload), payload)
    ).hexdigest()
    assert envelope.pae_sha256() == expected
    assert Verifier(keys=[trusted(SIGNER)]).verify_envelope(envelope.to_json()).pae_sha256 == (
        expected
    )
    # The payload type is signed too: the same bytes under another type differ.
    assert Envelope("application/json", payload, envelope.signatures).pae_sha256() != expected


def test_with_keys_keeps_the_rules_and_checks_the_keys(envelope):
    # The template trusts OTHER only and revokes SIGNER's key with a time window
    # set too: the copy must carry both, and check its own keys.
    window = TimeWindowTarget(
        not_before=T0 - timedelta(hours=1), not_after=T0 + timedelta(hours=1), keyid=KEYID
    )
    template = _verifier(rev(1, window), keys=(OTHER,))
    with pytest.raises(VerificationError, match="0 of 1"):
        template.verify_envelope(envelope)
    swapped = template.with_keys([trusted(SIGNER)])
    with pytest.raises(VerificationError, match="revoked") as e:
        swapped.verify_envelope(envelope, artifact_digest=LAYER)
    assert e.value.detail["revoked"] is True
    assert swapped.revocation_version == template.revocation_version == 1
    unrevoked = _verifier(keys=(OTHER,)).with_keys([trusted(SIGNER)])
    assert unrevoked.verify_envelope(envelope, artifact_digest=LAYER).keys == (KEYID,)
    with pytest.raises(VerificationError, match="0 of 1"):  # the template is unchanged
        template.verify_envelope(envelope)
    with pytest.raises(ConfigError, match="listed twice"):
        template.with_keys([trusted(SIGNER), trusted(SIGNER)])
    with pytest.raises(ConfigError, match="threshold"):
        template.with_keys([trusted(SIGNER)], threshold=2)
    with pytest.raises(ConfigError, match="at least one"):
        template.with_keys([])
