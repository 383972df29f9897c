# SPDX-License-Identifier: Apache-2.0
"""The hot path's shortcuts give exactly what the plain code gave.

``Envelope.to_json`` is assembled by hand (its sha256 is the envelope id),
``b64decode_strict`` has a fast path for canonical standard base64, and
``loads_strict`` uses prebuilt decoders, ``parse_envelope`` tries shortcuts
for ASCII text and canonical base64, and each trusted key carries a checker
built once: each is checked against the straightforward version it replaced.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.dsse import (
    Envelope,
    Signature,
    _b64_canonical,
    _short_ascii,
    _text,
    b64decode_strict,
    parse_envelope,
)
from attestor.errors import InvalidInput, TooLarge
from attestor.json_strict import loads_strict
from attestor.verify import TrustedKey
from attestor.verify._crypto import verify_signature

# Lone surrogates, quotes, controls and non-ASCII: everything json.dumps escapes.
texts = st.text(alphabet=st.characters(codec=None), max_size=12)
envelopes = st.builds(
    Envelope,
    payload_type=texts,
    payload=st.binary(max_size=40),
    signatures=st.lists(
        st.builds(Signature, keyid=texts, sig=st.binary(min_size=1, max_size=10)),
        min_size=1,
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(envelopes)
def test_to_json_is_json_dumps_of_to_dict(envelope: Envelope) -> None:
    expected = json.dumps(envelope.to_dict(), separators=(",", ":"), sort_keys=False).encode()
    assert envelope.to_json() == expected


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=20), st.integers(min_value=0, max_value=40), st.data())
def test_b64_accepts_exactly_canonical_encodings(raw: bytes, cap: int, data: st.DataObject) -> None:
    canonical = base64.b64encode(raw).decode()
    if len(raw) > cap:
        with pytest.raises(TooLarge):
            b64decode_strict(canonical, field="f", max_bytes=cap)
    else:
        assert b64decode_strict(canonical, field="f", max_bytes=cap) == raw
    # One changed character: accepted only if it is still canonical base64 of
    # some value (then it decodes to that value), else refused.
    if canonical:
        i = data.draw(st.integers(0, len(canonical) - 1))
        c = data.draw(st.sampled_from("A/+=-_ Q\n"))
        mutated = canonical[:i] + c + canonical[i + 1 :]
        try:
            out = b64decode_strict(mutated, field="f", max_bytes=64)
        except InvalidInput:
            return
        reencoded = base64.b64encode(out).decode()
        urlsafe = base64.urlsafe_b64encode(out).decode()
        assert mutated in (reencoded, urlsafe, reencoded.rstrip("="), urlsafe.rstrip("="))


def test_b64_non_zero_trailing_bits_refused() -> None:
    assert b64decode_strict("QQ==", field="f", max_bytes=4) == b"A"
    with pytest.raises(InvalidInput, match="non-zero trailing bits"):
        b64decode_strict("QR==", field="f", max_bytes=4)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"a": {"b": 1, "b": 2}, "a": 3}', "d: duplicate JSON key 'b'"),  # inner first
        ('{"x": 1, "y": 2, "x": 3, "y": 4}', "d: duplicate JSON key 'x'"),
        ("\ufeff{}", "d: not JSON (Unexpected UTF-8 BOM"),
    ],
)
def test_loads_strict_messages(doc: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        loads_strict(doc, what="d")
    assert e.value.message.startswith(message)


def test_loads_strict_decoders_are_reusable() -> None:
    with pytest.raises(InvalidInput):
        loads_strict(b'{"a": 1.5}', what="d", integers_only=True)
    assert loads_strict(b'{"a": 1.5}', what="d") == {"a": 1.5}
    assert loads_strict(bytearray(b'{"a": [1, {"b": 2}]}'), what="d") == {"a": [1, {"b": 2}]}


_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _last_data_char_replaced(encoded: str, c: str) -> str:
    # The character before the padding holds the bits the padding leaves unused.
    i = len(encoded.rstrip("=")) - 1
    return encoded[:i] + c + encoded[i + 1 :] if i >= 0 else encoded


# Any string, canonical base64 of some bytes, or such base64 with one change
# (non-zero unused bits included).
b64_texts = st.one_of(
    texts,
    st.builds(
        _last_data_char_replaced,
        st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
        st.sampled_from(_STD),
    ),
    st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=30).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode()[:-1] + "B"),
)


@settings(max_examples=500, deadline=None)
@given(b64_texts, st.integers(min_value=0, max_value=40))
def test_b64_shortcut_accepts_only_what_the_full_check_accepts(value: str, cap: int) -> None:
    fast = _b64_canonical(value, cap)
    if fast is not None:
        assert b64decode_strict(value, field="f", max_bytes=cap) == fast


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, st.integers(), st.none()), st.integers(min_value=0, max_value=12))
def test_text_shortcut_accepts_only_what_the_full_check_accepts(value: object, cap: int) -> None:
    fast = _short_ascii(value, cap)
    if fast is not None:
        assert _text(value, field="f", max_chars=cap, allow_empty=True) == fast is value


@settings(max_examples=200, deadline=None)
@given(envelopes)
def test_parse_envelope_round_trips_what_to_json_writes(envelope: Envelope) -> None:
    # Every field through the shortcuts or the full checks: the same envelope,
    # or a refusal (an empty payloadType, a lone surrogate) that names the field.
    try:
        parsed = parse_envelope(envelope.to_json())
    except InvalidInput as e:
        assert e.message.startswith(("payloadType", "signatures[")), e.message
        return
    assert parsed == envelope


KEYS = {
    "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def _sign(private: object, data: bytes) -> bytes:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if private.curve.name == "secp384r1" else hashes.SHA256()
        return private.sign(data, ec.ECDSA(digest))
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return private.sign(data)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_per_key_checker_answers_as_verify_signature(name: str) -> None:
    private = KEYS[name]
    public = private.public_key()  # type: ignore[attr-defined]
    check = TrustedKey(keyid="k", public_key=public, algorithm=name).check
    data = b"DSSEv1 1 t 4 data"
    good = _sign(private, data)
    for sig, message in [
        (good, data),
        (good, data + b"!"),
        (b"\x30\x00garbage", data),
        (good[:-1] + bytes([good[-1] ^ 1]), data),
    ]:
        assert check(sig, message) is verify_signature(public, sig, message)
    assert check(good, data) is True


@pytest.mark.parametrize("encoded", [base64.b64encode(b"AB").decode(), "QUJD" + "QQ=="])
def test_b64_shortcut_checks_the_bits_padding_leaves_unused(encoded: str) -> None:
    # Every character before the padding: accepted exactly when canonical.
    for c in _STD:
        value = _last_data_char_replaced(encoded, c)
        try:
            strict: bytes | None = b64decode_strict(value, field="f", max_bytes=64)
        except InvalidInput:
            strict = None
        assert _b64_canonical(value, 64) == strict, value
