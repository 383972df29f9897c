# SPDX-License-Identifier: Apache-2.0
"""Fuzz the revocation and feed parsers: every input is cleanly rejected
(InvalidInput or VerificationError, never another exception), and nothing
that was not signed as it is ever passes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope, parse_envelope
from attestor.errors import InvalidInput, VerificationError
from attestor.revocation import Revocation, parse_target
from attestor.revocation_feed import (
    build_feed_page,
    parse_feed_page,
    sign_feed_page,
    verify_feed_page,
)
from tests.unit.revocation._helpers import T0, one_of_each, trusted

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNER = CryptoSigner.generate_ed25519()
KEYS = [trusted(SIGNER)]
NOW = T0 + timedelta(minutes=1)
PAYLOAD = build_feed_page(one_of_each(), since=0, limit=100, now=T0, server_id="srv")
ENVELOPE = sign_feed_page(PAYLOAD, SIGNER, SIGNER.public_key.keyid)
ENVELOPE_BYTES = ENVELOPE.to_json()
REV_DOCS = [r.to_dict() for r in one_of_each()]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["sha256:" + "a" * 64, "2026-03-01T12:00:00Z", "key", "subject", "x"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)


def _verify(data: bytes):
    return verify_feed_page(data, KEYS, expected_since=0, now=NOW, max_age=timedelta(minutes=5))


def _mutate_path(doc, path, value):
    """Walk containers by index (mod size) and replace the member reached."""
    parent, key = None, None
    target = doc
    for step in path:
        if isinstance(target, list) and target:
            parent, key = target, step % len(target)
        elif isinstance(target, dict) and target:
            parent, key = target, sorted(target)[step % len(target)]
        else:
            break
        target = parent[key]
    if parent is not None:
        parent[key] = value


@FUZZ
@given(json_values)
def test_revocation_parser_random_documents(doc):
    with pytest.raises(InvalidInput):
        Revocation.from_dict(doc)


@FUZZ
@given(st.integers(0, 6), st.lists(st.integers(0, 10), min_size=1, max_size=3), json_values)
def test_revocation_parser_mutated_documents(which, path, value):
    doc = json.loads(json.dumps(REV_DOCS[which]))
    _mutate_path(doc, path, value)
    try:
        parsed = Revocation.from_dict(doc)
    except InvalidInput:
        return
    # Whatever passed is a revocation the schema and the model both accept.
    assert Revocation.from_dict(json.loads(parsed.to_json())) == parsed
    assert parse_target(doc["target"]) == parsed.target


@FUZZ
@given(st.binary(max_size=400))
def test_page_parser_random_bytes(data):
    with pytest.raises(InvalidInput):
        parse_feed_page(data)


@FUZZ
@given(st.lists(st.integers(0, 10), min_size=1, max_size=4), json_values)
def test_page_parser_mutated_pages(path, value):
    doc = json.loads(PAYLOAD)
    _mutate_path(doc, path, value)
    try:
        page = parse_feed_page(json.dumps(doc).encode())
    except InvalidInput:
        return
    seqs = [r.sequence for r in page.revocations]
    assert seqs == sorted(set(seqs)) and page.since <= page.next <= page.latest
    assert page.complete == (page.next == page.latest)


@FUZZ
@given(json_values)
def test_verify_random_json(doc):
    with pytest.raises((InvalidInput, VerificationError)):
        _verify(json.dumps(doc).encode())


@FUZZ
@given(st.integers(0, len(ENVELOPE_BYTES) - 1), st.binary(max_size=3), st.integers(0, 3))
def test_verify_mutated_envelope_bytes(at, insert, cut):
    data = ENVELOPE_BYTES[:at] + insert + ENVELOPE_BYTES[at + cut :]
    try:
        page = _verify(data)
    except (InvalidInput, VerificationError):
        return
    # Passing is only allowed when the change did not change what was signed.
    again = parse_envelope(data)
    assert (again.payload_type, again.payload) == (ENVELOPE.payload_type, PAYLOAD)
    assert page.payload == PAYLOAD


@FUZZ
@given(st.lists(st.integers(0, 10), min_size=1, max_size=4), json_values)
def test_verify_never_passes_a_changed_payload(path, value):
    doc = json.loads(PAYLOAD)
    _mutate_path(doc, path, value)
    changed = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if changed == PAYLOAD:
        return
    forged = Envelope(ENVELOPE.payload_type, changed, ENVELOPE.signatures)
    with pytest.raises((InvalidInput, VerificationError)):
        _verify(forged.to_json())
