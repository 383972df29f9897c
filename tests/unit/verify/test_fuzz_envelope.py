# SPDX-License-Identifier: Apache-2.0
"""Fuzz the envelope parser and the verifier: every input ends in InvalidInput or
VerificationError (never another exception), and nothing unsigned ever passes."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner

from attestor.dsse import EnvelopeLimits, b64decode_strict, parse_envelope
from attestor.errors import InvalidInput, VerificationError
from tests.unit.verify._helpers import payload, sign, statement, trusted, verifier

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SIGNER = CryptoSigner.generate_ecdsa()
OTHER = CryptoSigner.generate_ed25519()
VERIFIER = verifier([trusted(SIGNER)])
VALID = sign(payload(statement()), SIGNER).to_dict()

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
b64ish = st.text(alphabet="ABCDEFGHabcdefgh0123456789+/-_=* \n\u00e9", max_size=60)
field_values = json_values | b64ish | st.text(max_size=30)


def _rejected(call) -> Exception:
    with pytest.raises((InvalidInput, VerificationError)) as err:
        call()
    return err.value


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _rejected(lambda: VERIFIER.verify_envelope(data))
    try:
        parse_envelope(data)
    except InvalidInput:
        pass


@FUZZ
@given(json_values)
def test_random_json_documents(doc):
    _rejected(lambda: VERIFIER.verify_envelope(json.dumps(doc).encode()))


@FUZZ
@given(
    st.sampled_from(["payloadType", "payload", "signatures", "keyid", "sig", "extra"]),
    field_values,
)
def test_one_field_replaced(field, value):
    doc = json.loads(json.dumps(VALID))
    if field in ("keyid", "sig"):
        doc["signatures"][0][field] = value
    else:
        doc[field] = value
    if field == "keyid" and isinstance(value, str) and len(value) <= 256:
        # The keyid is only a hint: changing it must not matter. Lone surrogates
        # survive json.dumps as escapes and must be rejected, not crash.
        try:
            VERIFIER.verify_envelope(doc)
        except InvalidInput:
            pass
        return
    _rejected(lambda: VERIFIER.verify_envelope(doc))
    _rejected(lambda: VERIFIER.verify_envelope(json.dumps(doc).encode()))


@FUZZ
@given(st.data())
def test_byte_mutations_of_a_valid_envelope(data):
    raw = bytearray(json.dumps(VALID).encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]))
    raw[index] = new
    try:
        result = VERIFIER.verify_envelope(bytes(raw))
    except (InvalidInput, VerificationError):
        return
    # A mutation may only pass if it did not change what was signed
    # (e.g. an escape in the keyid hint, or whitespace).
    assert result.payload_sha256 == VERIFIER.verify_envelope(VALID).payload_sha256


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_signed_garbage_payloads_never_pass(data):
    # Validly signed, but not a statement: the statement checks must reject it.
    envelope = sign(data, SIGNER)
    err = _rejected(lambda: VERIFIER.verify_envelope(envelope.to_json()))
    assert isinstance(err, VerificationError)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["_type", "subject", "predicateType", "predicate", "x"]), field_values
    )
)
def test_signed_statement_shapes(doc):
    envelope = sign(payload(doc), SIGNER)
    _rejected(lambda: VERIFIER.verify_envelope(envelope.to_json()))


@FUZZ
@given(st.text(max_size=50), st.text(max_size=50))
def test_unicode_payload_type_and_keyid(payload_type, keyid):
    doc = {
        "payloadType": payload_type,
        "payload": VALID["payload"],
        "signatures": [{"keyid": keyid, "sig": VALID["signatures"][0]["sig"]}],
    }
    # Only the true payloadType with the true signature can pass.
    if payload_type == VALID["payloadType"]:
        return
    _rejected(lambda: VERIFIER.verify_envelope(json.dumps(doc).encode()))


@FUZZ
@given(st.integers(0, 40), st.integers(0, 20), st.binary(max_size=64))
def test_caps_are_enforced(payload_len, n_sigs, sig):
    limits = EnvelopeLimits(max_payload_bytes=16, max_signatures=4, max_signature_bytes=32)
    doc = {
        "payloadType": "t",
        "payload": base64.b64encode(b"p" * payload_len).decode(),
        "signatures": [{"sig": base64.b64encode(sig).decode()}] * n_sigs,
    }
    try:
        envelope = parse_envelope(doc, limits=limits)
    except InvalidInput:
        assert payload_len > 16 or n_sigs > 4 or n_sigs == 0 or len(sig) > 32 or not sig
        return
    assert len(envelope.payload) <= 16 and 1 <= len(envelope.signatures) <= 4


def test_wrong_key_never_passes():
    envelope = sign(payload(statement()), OTHER)
    _rejected(lambda: VERIFIER.verify_envelope(envelope.to_json()))


@FUZZ
@given(st.binary(max_size=64), st.booleans(), st.booleans())
def test_base64_round_trip(data, urlsafe, padded):
    text = (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode()
    if not padded:
        text = text.rstrip("=")
    assert b64decode_strict(text, field="f", max_bytes=64) == data


@FUZZ
@given(st.text(alphabet="AQgw+/-_=Zz09", max_size=12))
def test_base64_accepts_only_canonical_strings(text):
    try:
        decoded = b64decode_strict(text, field="f", max_bytes=64)
    except InvalidInput:
        return
    # Whatever was accepted is exactly the canonical encoding of what it decoded to.
    canonical = {
        base64.b64encode(decoded).decode(),
        base64.urlsafe_b64encode(decoded).decode(),
    }
    assert text in canonical | {c.rstrip("=") for c in canonical}
