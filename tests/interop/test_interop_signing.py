# SPDX-License-Identifier: Apache-2.0
"""Our signer's envelopes and bundles verify with openssl, sigstore-js and cosign's
rules; one flipped byte of payload or signature fails all three."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest

from attestor.signing.bundle import bundle_from_envelope
from attestor.signing.dsse import sign_envelope
from attestor.signing.keys import generate_key_file, load_signer
from attestor.verify import TrustedKey, Verifier
from tests.interop.checks import cosign_checks, openssl_verify_envelope, sigstore_js_verify_bundle
from tests.interop.samples import (
    LAYER_SHA256,
    require_slsa_schema,
    slsa_statement,
    statement_bytes,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["ecdsa-p256", "ed25519"], scope="module")
def signed(request, tmp_path_factory):
    keys_dir = tmp_path_factory.mktemp("keys") / request.param
    uri, info = generate_key_file(keys_dir, request.param)
    envelope = sign_envelope(statement_bytes(slsa_statement()), load_signer(uri), keyid=info.keyid)
    return info, envelope.to_dict(), bundle_from_envelope(envelope, keyid=info.keyid)


def _flip(b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _all_three(info, envelope, bundle, tmp: Path) -> list[bool]:
    return [
        openssl_verify_envelope(envelope, info.public_key_pem, tmp),
        sigstore_js_verify_bundle(bundle, info.public_key_pem),
        cosign_checks(envelope, info.public_key_pem, LAYER_SHA256),
    ]


def test_signed_envelope_passes_all_three_checks(signed, tmp_path):
    info, envelope, bundle = signed
    assert _all_three(info, envelope, bundle, tmp_path) == [True, True, True]
    # And our own verifier agrees.
    require_slsa_schema()
    verifier = Verifier(keys=[TrustedKey.from_pem(info.public_key_pem)])
    assert verifier.verify_envelope(envelope, artifact_digest=LAYER_SHA256).keys == (info.keyid,)


@pytest.mark.parametrize("field", ["payload", "sig"])
@pytest.mark.parametrize("where", [0, 17, -1])
def test_one_flipped_byte_fails_all_three(signed, tmp_path, field, where):
    info, envelope, bundle = signed
    envelope = copy.deepcopy(envelope)
    bundle = copy.deepcopy(bundle)
    if field == "payload":
        envelope["payload"] = _flip(envelope["payload"], where)
        bundle["dsseEnvelope"]["payload"] = envelope["payload"]
    else:
        envelope["signatures"][0]["sig"] = _flip(envelope["signatures"][0]["sig"], where)
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = envelope["signatures"][0]["sig"]
    assert _all_three(info, envelope, bundle, tmp_path) == [False, False, False]


def test_keyid_is_ignored_by_all_three(signed, tmp_path):
    info, envelope, bundle = signed
    envelope = copy.deepcopy(envelope)
    bundle = copy.deepcopy(bundle)
    envelope["signatures"][0]["keyid"] = "not-the-key"
    bundle["dsseEnvelope"]["signatures"][0]["keyid"] = "not-the-key"
    bundle["verificationMaterial"]["publicKey"]["hint"] = "not-the-key"
    assert _all_three(info, envelope, bundle, tmp_path) == [True, True, True]


def test_other_key_fails_all_three(signed, tmp_path):
    info, envelope, bundle = signed
    _, other = generate_key_file(tmp_path / "other", info.algorithm)
    assert _all_three(other, envelope, bundle, tmp_path) == [False, False, False]


def test_cosign_rules_reject_unknown_field_wrong_type_and_wrong_artifact(signed, tmp_path):
    info, _, _ = signed
    uri, key = generate_key_file(tmp_path / "k", info.algorithm)
    signer = load_signer(uri)

    def sign(statement):
        return sign_envelope(statement_bytes(statement), signer, keyid="").to_dict()

    pem = key.public_key_pem
    assert cosign_checks(sign(slsa_statement()), pem, LAYER_SHA256)
    assert not cosign_checks(sign(slsa_statement(extra=1)), pem, LAYER_SHA256)
    v02 = slsa_statement(predicateType="https://slsa.dev/provenance/v0.2")
    assert not cosign_checks(sign(v02), pem, LAYER_SHA256)
    assert not cosign_checks(sign(slsa_statement()), pem, "0" * 64)
