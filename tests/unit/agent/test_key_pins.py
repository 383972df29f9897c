# SPDX-License-Identifier: Apache-2.0
"""Pinning the server's key set on the node: TOFU, operator keys, rotation, refusals."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner

from agent.trust import KeyPins, load_operator_keys
from agent.trust._state import PINS_FILE
from attestor.errors import ConfigError
from attestor.signing.dsse import sign_envelope
from tests.unit.agent._key_sets import entry, public_pem, signed_set


@pytest.fixture
def a() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


@pytest.fixture
def b() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


def keyids(pins: KeyPins) -> list[str]:
    return sorted(k.keyid for k in pins.trusted_keys())


def rotated(a: CryptoSigner, b: CryptoSigner) -> bytes:
    """A rotated A -> B the way the server signs it: by every key not revoked."""
    return signed_set([entry(a, "retired"), entry(b, age=1)], [b, a])


def test_first_registration_pins_the_set_and_it_survives_a_restart(
    tmp_path: Path, a: CryptoSigner
) -> None:
    pins = KeyPins(tmp_path)
    assert pins.pins is None and pins.trusted_keys() == []
    offer = pins.offer(signed_set([entry(a)], [a]))
    assert (offer.outcome, offer.version, offer.reason) == ("pinned", 1, None)
    assert (tmp_path / PINS_FILE).stat().st_mode & 0o777 == 0o600
    restarted = KeyPins(tmp_path)
    assert restarted.pins == pins.pins and restarted.pins is not None
    assert restarted.pins.source == "tofu" and keyids(restarted) == [a.public_key.keyid]
    assert restarted.offer(signed_set([entry(a)], [a])).outcome == "unchanged"


def test_first_use_still_needs_a_set_its_own_key_signed(a: CryptoSigner, b: CryptoSigner) -> None:
    pins = KeyPins(None)
    offer = pins.offer(signed_set([entry(a)], [b]))
    assert offer.outcome == "refused" and "verified" in (offer.reason or "")
    assert pins.pins is None
    # Signed by its active key, but listing a key that did not sign.
    offer = pins.offer(signed_set([entry(a), entry(b, "retired", age=1)], [a]))
    assert offer.outcome == "refused" and "did not sign" in (offer.reason or "")
    assert pins.pins is None


def test_a_rotation_signed_by_the_pinned_key_is_followed(
    tmp_path: Path, a: CryptoSigner, b: CryptoSigner
) -> None:
    pins = KeyPins(tmp_path)
    pins.offer(signed_set([entry(a)], [a]))
    offer = pins.offer(rotated(a, b))
    assert (offer.outcome, offer.version) == ("updated", 3)
    assert keyids(pins) == sorted([a.public_key.keyid, b.public_key.keyid])
    assert KeyPins(tmp_path).pins == pins.pins  # persisted


def test_a_set_no_pinned_key_signed_is_refused_and_the_pins_stay(
    tmp_path: Path, a: CryptoSigner, b: CryptoSigner
) -> None:
    pins = KeyPins(tmp_path)
    pins.offer(signed_set([entry(a)], [a]))
    before = pins.pins
    # A substituted server: its own key, listed alone, higher version.
    substituted = signed_set([entry(b)], [b], version=9)
    # The rotation signed by the new key only (the old key did not sign it).
    unsigned_by_old = signed_set([entry(a, "retired"), entry(b, age=1)], [b])
    for body in (substituted, unsigned_by_old):
        offer = pins.offer(body)
        assert offer.outcome == "refused" and offer.reason is not None
        assert offer.reason.startswith("key set refused: ") and offer.version == 1
        assert pins.pins == before
    assert KeyPins(tmp_path).pins == before


def test_an_unsigned_or_foreign_document_is_refused(a: CryptoSigner) -> None:
    pins = KeyPins(None)
    pins.offer(signed_set([entry(a)], [a]))
    doc = json.loads(signed_set([entry(a)], [a], version=5))
    unsigned = json.dumps({**doc, "signatures": []}).encode()
    # A signature by the pinned key over the same bytes as another payload type.
    other_type = sign_envelope(
        json.dumps({"version": 7}).encode(), a, keyid=a.public_key.keyid
    ).to_json()
    for body in (unsigned, other_type, b"{}", b"not json"):
        assert pins.offer(body).outcome == "refused"
    assert pins.pins is not None and pins.pins.version == 1


def test_rollback_and_equivocation_are_refused(a: CryptoSigner, b: CryptoSigner) -> None:
    pins = KeyPins(None)
    pins.offer(signed_set([entry(a)], [a]))
    assert pins.offer(rotated(a, b)).outcome == "updated"
    old = pins.offer(signed_set([entry(a)], [a]))
    assert old.outcome == "refused" and "rolls back the pinned version 3" in (old.reason or "")
    c = CryptoSigner.generate_ecdsa()
    same_version = signed_set([entry(a, "retired"), entry(c, age=1)], [a], version=3)
    fork = pins.offer(same_version)
    assert fork.outcome == "refused" and "other keys" in (fork.reason or "")
    assert keyids(pins) == sorted([a.public_key.keyid, b.public_key.keyid])


def test_a_revoked_pinned_key_signs_nothing(a: CryptoSigner, b: CryptoSigner) -> None:
    pins = KeyPins(None)
    pins.offer(signed_set([entry(a)], [a]))
    pins.offer(rotated(a, b))
    revoked = signed_set([entry(a, "revoked"), entry(b, age=1)], [b])
    assert pins.offer(revoked).outcome == "updated"
    assert keyids(pins) == [b.public_key.keyid]
    # Only the revoked key signed this one.
    c = CryptoSigner.generate_ecdsa()
    by_revoked = signed_set([entry(a, "revoked"), entry(c, age=2)], [a], version=9)
    assert pins.offer(by_revoked).outcome == "refused"


def test_a_key_new_to_the_pins_must_sign_the_set_that_adds_it(
    a: CryptoSigner, b: CryptoSigner
) -> None:
    pins = KeyPins(None)
    pins.offer(signed_set([entry(a)], [a]))
    # The pinned key signed, but the added key did not: a row written into the
    # server's key table by someone who holds no private key for it.
    injected = signed_set([entry(a), entry(b, "retired", age=1)], [a])
    offer = pins.offer(injected)
    assert offer.outcome == "refused" and "did not sign the set that adds it" in (
        offer.reason or ""
    )
    assert keyids(pins) == [a.public_key.keyid]
    assert pins.offer(signed_set([entry(a), entry(b, "retired", age=1)], [a, b])).changed


def test_a_revoked_pin_is_never_trusted_again(a: CryptoSigner, b: CryptoSigner) -> None:
    pins = KeyPins(None)
    pins.offer(signed_set([entry(a)], [a]))
    pins.offer(rotated(a, b))
    pins.offer(signed_set([entry(a, "revoked"), entry(b, age=1)], [b]))
    back = signed_set([entry(a, "retired"), entry(b, age=1)], [b, a], version=9)
    offer = pins.offer(back)
    assert offer.outcome == "refused" and "revoked is final" in (offer.reason or "")
    assert keyids(pins) == [b.public_key.keyid]


def test_operator_keys_replace_trust_on_first_use(
    tmp_path: Path, a: CryptoSigner, b: CryptoSigner
) -> None:
    keyfile = tmp_path / "server.pub"
    keyfile.write_text(public_pem(a))
    state = tmp_path / "state"
    pins = KeyPins(state, operator_keys=load_operator_keys(keyfile))
    assert pins.pins is not None and pins.pins.source == "operator" and pins.pins.version == 0
    # The server's own set, signed by a key the operator did not give: refused.
    assert pins.offer(signed_set([entry(b)], [b])).outcome == "refused"
    # A set the operator's key signed is followed, and kept across a restart.
    assert pins.offer(rotated(a, b)).outcome == "updated"
    again = KeyPins(state, operator_keys=load_operator_keys(keyfile))
    assert again.pins is not None and again.pins.version == 3
    # The operator changes the file: those keys are the pins again.
    keyfile.write_text(public_pem(b))
    changed = KeyPins(state, operator_keys=load_operator_keys(keyfile))
    assert changed.pins is not None and changed.pins.version == 0
    assert keyids(changed) == [b.public_key.keyid]


def test_operator_key_file_errors_are_config_errors(tmp_path: Path, a: CryptoSigner) -> None:
    path = tmp_path / "keys.pem"
    for content, message in (
        ("", "holds no PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "keys.pem"),
        ("x" * (256 * 1024 + 1), "over"),
    ):
        path.write_text(content)
        with pytest.raises(ConfigError, match=message):
            load_operator_keys(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_operator_keys(tmp_path / "missing.pem")
    path.write_text(public_pem(a) + "\n" + public_pem(a))  # the same key twice counts once
    assert [k.keyid for k in load_operator_keys(path)] == [a.public_key.keyid]


def test_an_unreadable_pin_file_stops_the_agent_instead_of_trusting_again(
    tmp_path: Path, a: CryptoSigner
) -> None:
    KeyPins(tmp_path).offer(signed_set([entry(a)], [a]))
    path = tmp_path / PINS_FILE
    doc = json.loads(path.read_bytes())
    doc["pins"]["version"] = 0  # edited: the checksum no longer matches
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="remove the file to pin them anew"):
        KeyPins(tmp_path)
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ConfigError):
        KeyPins(tmp_path)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_a_damaged_pin_file_or_key_file_is_only_ever_a_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / PINS_FILE).write_bytes(data)
        with pytest.raises(ConfigError):
            KeyPins(Path(tmp))
        (Path(tmp) / "keys.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + data)
        with pytest.raises(ConfigError):
            load_operator_keys(Path(tmp) / "keys.pem")
