# SPDX-License-Identifier: Apache-2.0
"""Pin the server's key set and accept a new one only when a pinned key signed it.

The rules (docs/key-set.md, "Agent"):

- Nothing pinned (first registration, empty state directory): the server's
  set is pinned if every key it lists (but revoked ones) signed it (trust on
  first use).
- Operator keys (``--pinned-keys``): they are the pins, version 0, and the
  server's sets must chain from them; the server is never trusted on first use.
  When the operator changes the file, the new keys replace the pins.
- Otherwise a set is accepted only if a pinned key that is not revoked signed
  it, every key new to the pins signed it too, and its version is above the
  pinned one. A pinned revoked key stays revoked. A lower version is a rollback,
  the same version with other keys an equivocation: both are refused, like an
  unsigned or wrongly signed set, and the pins stay as they were.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from agent.server import ServerKey
from agent.trust._state import Pins, load_pins, save_pins
from attestor.digests import KeyId
from attestor.dsse import parse_envelope
from attestor.errors import ConfigError, Error, InvalidInput, VerificationError
from attestor.signing.keys import PublicKeyInfo, public_key_info
from attestor.signing.keyset import KeySet, parse_key_set, verify_key_set
from attestor.verify import TrustedKey

__all__ = ["KeyPins", "Offer", "Pins", "load_operator_keys"]

_MAX_OPERATOR_FILE: Final = 256 * 1024
_MAX_OPERATOR_KEYS: Final = 64
# A file of concatenated SPKI PEM blocks (cosign.pub files put together).
# cryptography loads one PEM at a time, so the blocks are found here first.
_PEM_BLOCK: Final = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----"
)

Outcome = Literal["pinned", "updated", "unchanged", "refused"]


@dataclass(frozen=True)
class Offer:
    """What became of one key set the server offered."""

    outcome: Outcome
    #: The pinned version after the offer.
    version: int
    #: Why it was refused (or why an accepted set could not be saved).
    reason: str | None = None

    @property
    def changed(self) -> bool:
        """The pinned keys changed: verifiers must be rebuilt."""
        return self.outcome in ("pinned", "updated")


def load_operator_keys(path: Path) -> tuple[PublicKeyInfo, ...]:
    """The public keys (SPKI PEM blocks) of an operator's ``--pinned-keys`` file.

    Raises:
        ConfigError: the file cannot be read, is too large, holds no key, too
            many, or a key that is not an accepted signing key.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_OPERATOR_FILE + 1)
    except OSError as e:
        raise ConfigError(f"cannot read pinned keys {path}: {e.strerror}") from e
    if len(data) > _MAX_OPERATOR_FILE:
        raise ConfigError(f"pinned keys {path} is over {_MAX_OPERATOR_FILE} bytes")
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise ConfigError(f"pinned keys {path} holds no PEM public key")
    if len(blocks) > _MAX_OPERATOR_KEYS:
        raise ConfigError(f"pinned keys {path} holds over {_MAX_OPERATOR_KEYS} keys")
    try:
        infos = [public_key_info(block) for block in blocks]
    except InvalidInput as e:
        raise ConfigError(f"pinned keys {path}: {e.message}") from e
    unique = {i.keyid: i for i in infos}
    return tuple(unique[k] for k in sorted(unique))


def _operator_pins(keys: Sequence[PublicKeyInfo]) -> Pins:
    digest = hashlib.sha256("\n".join(k.keyid for k in keys).encode()).hexdigest()
    return Pins(
        source="operator",
        version=0,
        keys=tuple(ServerKey(k.keyid, k.algorithm, k.public_key_pem, "active") for k in keys),
        operator_sha256=digest,
    )


def _pins_of(key_set: KeySet, pins: Pins | None) -> Pins:
    return Pins(
        source=pins.source if pins is not None else "tofu",
        version=key_set.version,
        keys=tuple(
            ServerKey(KeyId(k.keyid), k.algorithm, k.public_key_pem, k.status) for k in key_set.keys
        ),
        operator_sha256=pins.operator_sha256 if pins is not None else None,
    )


def _check_succession(envelope: bytes, key_set: KeySet, current: Pins) -> None:
    """Refuse a signed set that may not follow ``current``.

    Raises:
        VerificationError: a rollback, an equivocation, a revoked key made
            usable again, or a key new to the pins that did not sign the set.
    """
    if key_set.version < current.version:
        raise VerificationError(
            f"version {key_set.version} rolls back the pinned version {current.version}"
        )
    if key_set.version == current.version:
        raise VerificationError(
            f"version {key_set.version} lists other keys than the pinned set of the same version"
        )
    pinned: dict[str, ServerKey] = {k.keyid: k for k in current.keys}
    for key in key_set.usable():
        known = pinned.get(key.keyid)
        if known is not None and known.status == "revoked":
            raise VerificationError(f"key {key.keyid} is revoked in the pins; revoked is final")
    _check_possession(envelope, key_set, pinned.keys())


def _check_possession(envelope: bytes, key_set: KeySet, pinned: Collection[str]) -> None:
    """Every usable key of ``key_set`` that is not in ``pinned`` signed it.

    The server signs with every key it lists, so a row added to its key table
    by someone who holds no private key (a database-only attacker) never
    becomes trusted here.

    Raises:
        VerificationError: a new key did not sign.
    """
    for key in key_set.usable():
        if key.keyid in pinned:
            continue
        try:
            verify_key_set(envelope, [key.trusted_key()])
        except VerificationError:
            raise VerificationError(
                f"new key {key.keyid} did not sign the set that adds it"
            ) from None


class KeyPins:
    """The agent's pinned server keys, kept in ``state_dir`` (None: in memory only).

    Thread-safe: the sweep (an attestation by an unknown key) and the loop's
    periodic poll both offer sets.

    Raises:
        ConfigError: the pinned-keys file in ``state_dir`` cannot be trusted.
        Unavailable: operator keys cannot be written to ``state_dir``.
    """

    def __init__(
        self, state_dir: Path | None, *, operator_keys: Sequence[PublicKeyInfo] | None = None
    ) -> None:
        self._dir = state_dir
        self._lock = threading.Lock()
        pins = load_pins(state_dir) if state_dir is not None else None
        if operator_keys:
            given = _operator_pins(operator_keys)
            # The operator's word wins over whatever the server's sets chained
            # to; unchanged keys keep the rotations followed since.
            if pins is None or pins.operator_sha256 != given.operator_sha256:
                pins = given
                self._save(pins)
        self._pins = pins

    @property
    def pins(self) -> Pins | None:
        """The pinned set (None before the first set is pinned)."""
        with self._lock:
            return self._pins

    def trusted_keys(self) -> list[TrustedKey]:
        """The pinned keys that are not revoked (empty before anything is pinned)."""
        pins = self.pins
        return pins.trusted_keys() if pins is not None else []

    def keyids(self) -> frozenset[str]:
        """The keyids pinned, revoked ones included."""
        pins = self.pins
        return frozenset(k.keyid for k in pins.keys) if pins is not None else frozenset()

    def _save(self, pins: Pins) -> None:
        if self._dir is not None:
            save_pins(self._dir, pins)

    def offer(self, envelope: bytes) -> Offer:
        """Judge a signed key set (``GET /v1/keys/set``) and pin it if it may be.

        Never raises for what the server sent: a refusal is an :class:`Offer`.
        """
        with self._lock:
            current = self._pins
            version = current.version if current is not None else 0
            try:
                key_set = self._verify(envelope, current)
                if current is not None:
                    if key_set.version == current.version and (
                        _pins_of(key_set, current).keys == current.keys
                    ):
                        return Offer("unchanged", version)
                    _check_succession(envelope, key_set, current)
            except Error as e:  # whatever the server sent, a refusal, never a crash
                return Offer("refused", version, f"key set refused: {e.message}")
            pins = _pins_of(key_set, current)
            # In memory first: a full disk must not keep a signed rotation
            # from the verifier (a restart follows it again from the old pins).
            self._pins = pins
            outcome: Outcome = "pinned" if current is None else "updated"
            try:
                self._save(pins)
            except Error as e:
                return Offer(outcome, pins.version, e.message)
            return Offer(outcome, pins.version)

    @staticmethod
    def _verify(envelope: bytes, current: Pins | None) -> KeySet:
        if current is not None:
            return verify_key_set(envelope, current.trusted_keys())
        # Trust on first use: still only a set that each of its keys signed.
        try:
            own = parse_key_set(parse_envelope(envelope).payload)
        except InvalidInput as e:
            raise VerificationError(e.message) from None
        key_set = verify_key_set(envelope, own.trusted_keys())
        _check_possession(envelope, key_set, ())
        return key_set
