# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import base64
import copy
import json

import pytest

from attestor.dsse import Envelope, EnvelopeLimits, Signature, b64decode_strict, parse_envelope
from attestor.errors import InvalidInput, TooLarge


def _doc(**overrides):
    doc = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(b'{"x":1}').decode(),
        "signatures": [{"keyid": "k", "sig": base64.b64encode(b"\x30\x01").decode()}],
    }
    doc.update(overrides)
    return doc


def test_parses_bytes_and_mappings_alike_and_never_mutates():
    doc = _doc()
    before = copy.deepcopy(doc)
    from_map = parse_envelope(doc)
    assert doc == before
    assert parse_envelope(json.dumps(doc).encode()) == from_map
    assert from_map == Envelope(
        "application/vnd.in-toto+json", b'{"x":1}', (Signature("k", b"\x30\x01"),)
    )


def test_keyid_is_optional_and_may_be_empty():
    assert parse_envelope(_doc(signatures=[{"sig": "MAE="}])).signatures[0].keyid == ""
    assert parse_envelope(_doc(signatures=[{"sig": "MAE=", "keyid": ""}])).signatures[0].keyid == ""


def test_real_cosign_envelope_fixture_parses(asset):
    raw = asset("fixtures/provenance/example-package-container.slsa-v0.2.dsse.json").read_bytes()
    envelope = parse_envelope(raw)
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert json.loads(envelope.payload)["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert len(envelope.signatures) == 1
    # Re-serialising gives back the same document (standard, padded base64).
    assert json.loads(envelope.to_json()) == json.loads(raw)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(extra=1), "unknown member"),
        ({k: v for k, v in _doc().items() if k != "payload"}, "missing member 'payload'"),
        (_doc(payloadType=1), "payloadType: expected a string"),
        (_doc(payloadType=""), "payloadType: must not be empty"),
        (_doc(payload=None), "payload: expected a base64 string"),
        (_doc(signatures={}), "signatures: expected a list"),
        (_doc(signatures=[]), "at least 1 signature"),
        (_doc(signatures=["MAE="]), r"signatures\[0\]: expected an object"),
        (_doc(signatures=[{"keyid": "k"}]), r"signatures\[0\]: missing member 'sig'"),
        (_doc(signatures=[{"sig": "MAE=", "x": 1}]), r"signatures\[0\]: unknown member"),
        (_doc(signatures=[{"sig": "MAE=", "keyid": 7}]), r"signatures\[0\].keyid"),
        (_doc(signatures=[{"sig": ""}]), "empty signature"),
        (_doc(payloadType="a\ud800"), "lone surrogate"),
    ],
)
def test_structural_errors_are_precise(doc, message):
    with pytest.raises(InvalidInput, match=message):
        parse_envelope(doc)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b'"x"', b"\xff\xfe", b"[" * 100000, b'{"payloadType":'],
)
def test_non_envelope_documents(raw):
    with pytest.raises(InvalidInput):
        parse_envelope(raw)


def test_wrong_input_type():
    with pytest.raises(InvalidInput, match="expected bytes or a mapping"):
        parse_envelope("a string")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", b""),
        ("AA==", b"\x00"),
        ("AA", b"\x00"),  # unpadded (protobuf-JSON / URL-safe writers)
        ("-_8=", b"\xfb\xff"),  # URL-safe
        ("+/8=", b"\xfb\xff"),  # standard
        ("+/8", b"\xfb\xff"),
    ],
)
def test_base64_accepted_forms(value, expected):
    assert b64decode_strict(value, field="f", max_bytes=100) == expected


@pytest.mark.parametrize(
    "value",
    [
        "A",  # impossible length
        "AAA=A",  # data after padding
        "AB==",  # non-zero trailing bits: not canonical
        "AA=",  # wrong padding length
        "AA===",
        "+_8=",  # mixed alphabets
        "AA AA",
        "AA\n",
        "A*==",
        "\u00c0AAA",
        "====",
    ],
)
def test_base64_rejected_forms(value):
    with pytest.raises(InvalidInput):
        b64decode_strict(value, field="f", max_bytes=100)


def test_limits():
    limits = EnvelopeLimits(max_payload_bytes=4, max_signatures=2, max_document_bytes=10_000)
    with pytest.raises(TooLarge, match="payload"):
        parse_envelope(_doc(payload=base64.b64encode(b"12345").decode()), limits=limits)
    with pytest.raises(TooLarge, match="at most 2"):
        parse_envelope(_doc(payload="", signatures=[{"sig": "MAE="}] * 3), limits=limits)
    with pytest.raises(TooLarge, match="envelope"):
        parse_envelope(b" " * 10_001, limits=limits)
    with pytest.raises(TooLarge, match="sig"):
        parse_envelope(_doc(signatures=[{"sig": "A" * 4000}]))
    with pytest.raises(TooLarge, match="keyid"):
        parse_envelope(_doc(signatures=[{"sig": "MAE=", "keyid": "k" * 257}]))
    # A huge payload is refused before it is decoded.
    with pytest.raises(TooLarge):
        b64decode_strict("A" * 10_000_000, field="payload", max_bytes=1000)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Two payloads: verifiers that keep the first and those that keep the last
        # would check different statements under the same signature.
        (
            b'{"payloadType":"t","payload":"e30=","payload":"W10=","signatures":[]}',
            "envelope: duplicate JSON key 'payload'",
        ),
        (
            b'{"payloadType":"t","payload":"e30=","signatures":[{"sig":"AA==","sig":"AQ=="}]}',
            "envelope: duplicate JSON key 'sig'",
        ),
        (b'{"payloadType":NaN}', "envelope: non-standard JSON constant NaN"),
        (b'\xef\xbb\xbf{"payloadType":"t"}', "envelope: not JSON"),
    ],
)
def test_envelope_bytes_are_parsed_strictly(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_envelope(raw)
    assert info.value.message.startswith(message)
