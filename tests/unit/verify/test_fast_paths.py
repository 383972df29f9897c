# SPDX-License-Identifier: Apache-2.0
"""The hot path's shortcuts give exactly what the plain code gave.

``Envelope.to_json`` is assembled by hand (its sha256 is the envelope id),
``b64decode_strict`` has a fast path for canonical standard base64, and
``loads_strict`` uses prebuilt decoders: each is checked against the
straightforward version it replaced.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.dsse import Envelope, Signature, b64decode_strict
from attestor.errors import InvalidInput, TooLarge
from attestor.json_strict import loads_strict

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
