# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope, Signature, pae, parse_envelope
from attestor.errors import UpstreamError
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE, bundle_from_envelope
from attestor.signing.dsse import sign_envelope
from attestor.verify._crypto import verify_signature


def test_pae_spec_vector():
    # secure-systems-lab/dsse protocol.md test vector.
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Lengths are byte lengths, not character lengths.
    assert pae("t\u00e9", b"\xff") == b"DSSEv1 3 t\xc3\xa9 1 \xff"


@pytest.mark.parametrize("make", [CryptoSigner.generate_ecdsa, CryptoSigner.generate_ed25519])
def test_sign_envelope_signs_the_pae(make):
    signer = make()
    envelope = sign_envelope(b'{"a":1}', signer, keyid="kid")
    assert envelope.payload == b'{"a":1}'
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert [s.keyid for s in envelope.signatures] == ["kid"]
    key = signer.public_key._crypto_key()
    sig = envelope.signatures[0].sig
    assert verify_signature(key, sig, pae(envelope.payload_type, b'{"a":1}'))
    assert not verify_signature(key, sig, b'{"a":1}')  # not the raw payload


def test_ecdsa_signature_is_der():
    envelope = sign_envelope(b"x", CryptoSigner.generate_ecdsa(), keyid="")
    r, s = decode_dss_signature(envelope.signatures[0].sig)  # raises unless DER
    assert r > 0 and s > 0


def test_envelope_json_is_cosign_format_and_round_trips():
    envelope = sign_envelope(b"\x00\xffpayload", CryptoSigner.generate_ed25519(), keyid="k1")
    doc = json.loads(envelope.to_json())
    assert list(doc) == ["payloadType", "payload", "signatures"]
    assert list(doc["signatures"][0]) == ["keyid", "sig"]
    assert base64.b64decode(doc["payload"], validate=True) == b"\x00\xffpayload"
    assert parse_envelope(envelope.to_json()) == envelope
    assert parse_envelope(doc) == envelope


def test_signer_failure_is_upstream_error():
    class Broken:
        def sign(self, payload):
            raise OSError("kms unreachable")

    with pytest.raises(UpstreamError, match="kms unreachable"):
        sign_envelope(b"x", Broken(), keyid="")  # type: ignore[arg-type]


def test_bundle_v03_shape():
    envelope = Envelope("application/vnd.in-toto+json", b"{}", (Signature("kid", b"\x01\x02"),))
    bundle = bundle_from_envelope(envelope, keyid="kid")
    assert bundle == {
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "kid"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": "e30=",
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "AQI=", "keyid": "kid"}],
        },
    }
    # The bundle's dsseEnvelope is itself a valid DSSE envelope.
    assert parse_envelope(bundle["dsseEnvelope"]) == envelope


def test_bundle_parses_with_sigstore_python_models():
    # sigstore-python's own protobuf-JSON models (sigstore.models.Bundle then
    # refuses it for lacking a certificate: FACTS.md; the managed-key path is ours).
    from sigstore_models.bundle.v1 import Bundle

    envelope = sign_envelope(b"{}", CryptoSigner.generate_ecdsa(), keyid="kid")
    model = Bundle.from_json(json.dumps(bundle_from_envelope(envelope, keyid="kid")))
    assert model.verification_material.public_key.hint == "kid"
    assert model.dsse_envelope.payload_type == "application/vnd.in-toto+json"
    assert model.dsse_envelope.signatures[0].sig == envelope.signatures[0].sig
