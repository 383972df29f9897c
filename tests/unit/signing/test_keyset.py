# SPDX-License-Identifier: Apache-2.0
"""The signed key set document: building, parsing, signing and verifying it."""

from __future__ import annotations

import base64
import importlib.util
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner

from attestor.errors import InvalidInput, VerificationError
from attestor.signing.keyset import (
    KEY_SET_PAYLOAD_TYPE,
    KeySetKey,
    build_key_set,
    key_set_version,
    parse_key_set,
    sign_key_set,
    verify_key_set,
)
from attestor.verify import TrustedKey
from tests.conftest import REPO_ROOT
from tests.unit.agent._key_sets import entry, signed_set

VECTOR_DIR = REPO_ROOT / "tests" / "assets" / "key-set-vector"


def _payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_the_version_counts_every_lifecycle_event() -> None:
    a, b = CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()
    assert key_set_version([entry(a)]) == 1
    assert key_set_version([entry(a, "retired"), entry(b, age=1)]) == 3
    assert key_set_version([entry(a, "revoked"), entry(b, age=1)]) == 4
    parsed = parse_key_set(build_key_set([entry(a, "retired"), entry(b, age=1)]))
    assert parsed.version == 3 and [k.status for k in parsed.keys] == ["retired", "active"]


def test_what_a_server_would_never_build_is_refused() -> None:
    a, b = CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()
    good = entry(a).to_dict()
    cases = {
        "keyid or algorithm": {"version": 1, "keys": [{**good, "keyid": "0" * 64}]},
        "listed twice": {"version": 2, "keys": [good, good]},
        "more than one active": {"version": 2, "keys": [good, entry(b).to_dict()]},
        "below its keys": {"version": 1, "keys": [entry(a, "retired").to_dict()]},
        "status and revoked": {"version": 3, "keys": [{**entry(a, "revoked").to_dict(),
                                                       "status": "retired"}]},
        "key-set: ": {"version": 1, "keys": [{**good, "extra": 1}]},
    }  # fmt: skip
    for why, doc in cases.items():
        with pytest.raises(InvalidInput, match=why):
            parse_key_set(_payload(doc))
    with pytest.raises(InvalidInput, match="repeated|duplicate"):
        parse_key_set(b'{"version":1,"version":2,"keys":[]}')


def test_verify_needs_a_trusted_signature_and_the_key_set_type() -> None:
    a, b = CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()
    body = signed_set([entry(a, "retired"), entry(b, age=1)], [b, a])
    ka = TrustedKey.from_pem(entry(a).public_key_pem)
    kb = TrustedKey.from_pem(entry(b).public_key_pem)
    assert verify_key_set(body, [ka]).signed_by == (ka.keyid,)
    assert verify_key_set(body, [kb]).version == 3
    stranger = TrustedKey.from_pem(entry(CryptoSigner.generate_ecdsa()).public_key_pem)
    with pytest.raises(VerificationError):
        verify_key_set(body, [stranger])
    with pytest.raises(VerificationError):
        verify_key_set(body, [])
    doc = json.loads(body)
    doc["payloadType"] = "application/vnd.in-toto+json"
    with pytest.raises(VerificationError, match="payloadType"):
        verify_key_set(json.dumps(doc).encode(), [ka])


def test_a_signed_payload_that_is_not_a_key_set_is_a_verification_error() -> None:
    a = CryptoSigner.generate_ecdsa()
    envelope = sign_key_set(b'{"version":1}', [(a, a.public_key.keyid)]).to_json()
    with pytest.raises(VerificationError, match="signed key set is invalid"):
        verify_key_set(envelope, [TrustedKey.from_pem(entry(a).public_key_pem)])


def test_sign_needs_one_to_sixteen_signers() -> None:
    a = CryptoSigner.generate_ecdsa()
    payload = build_key_set([entry(a)])
    with pytest.raises(InvalidInput):
        sign_key_set(payload, [])
    with pytest.raises(InvalidInput):
        sign_key_set(payload, [(a, "k")] * 17)


def test_the_published_vector_verifies_and_is_reproducible() -> None:
    vector = json.loads((VECTOR_DIR / "vector.json").read_text())
    old = TrustedKey.from_pem(vector["old_public_key_pem"])
    new = TrustedKey.from_pem(vector["new_public_key_pem"])
    first = verify_key_set(json.dumps(vector["first"]).encode(), [old])
    rotation = verify_key_set(json.dumps(vector["rotation"]).encode(), [old])
    assert (first.version, rotation.version) == (1, 3)
    assert rotation.signed_by == (old.keyid,)
    assert [(k.keyid, k.status) for k in rotation.keys] == [
        (old.keyid, "retired"), (new.keyid, "active")
    ]  # fmt: skip
    assert vector["rotation"]["payloadType"] == KEY_SET_PAYLOAD_TYPE
    spec = importlib.util.spec_from_file_location("make_vector", VECTOR_DIR / "make_vector.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.make() == vector  # Ed25519 signatures are deterministic


def test_the_spec_shows_the_vector() -> None:
    spec = (REPO_ROOT / "docs" / "key-set.md").read_text()
    vector = json.loads((VECTOR_DIR / "vector.json").read_text())
    payload = base64.b64decode(vector["rotation"]["payload"]).decode()
    assert payload in spec and vector["rotation"]["signatures"][1]["sig"] in spec


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _JSON.map(lambda d: json.dumps(d).encode()))
def test_parse_refuses_garbage_with_invalid_input_only(data: bytes) -> None:
    try:
        parse_key_set(data)
    except InvalidInput:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "version": st.integers(min_value=-2, max_value=2**64),
            "keys": st.lists(
                st.fixed_dictionaries(
                    {
                        "keyid": st.text(max_size=70),
                        "algorithm": st.sampled_from(["ecdsa-p256", "ed25519", "rsa"]),
                        "public_key_pem": st.text(max_size=30),
                        "status": st.sampled_from(["active", "retired", "revoked", "x"]),
                        "created": st.just("2026-01-01T00:00:00Z"),
                        "retired": st.none(),
                        "revoked": st.none(),
                    }
                ),
                max_size=3,
            ),
        }
    )
)
def test_parse_of_near_valid_documents_never_crashes(doc: dict[str, Any]) -> None:
    try:
        parse_key_set(_payload(doc))
    except InvalidInput:
        pass


def test_key_dates_round_trip() -> None:
    a = CryptoSigner.generate_ecdsa()
    key = entry(a, "revoked")
    parsed = parse_key_set(build_key_set([key])).keys[0]
    assert parsed == key and isinstance(parsed, KeySetKey)
    assert parsed.created == datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
