# SPDX-License-Identifier: Apache-2.0
"""The durable pinned key set: ``<state_dir>/pinned-keys.json``.

Written like the revocation state (tmp file, fsync, rename, fsync of the
directory), with a sha256 over the body. Unlike that state, a file that
cannot be read is never replaced by a fresh start: trusting the server again
on first use would let whoever broke the file choose the keys. The agent
stops with a ``ConfigError`` until an operator removes the file or gives
``--pinned-keys``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from agent._fs import seal, unseal, write_atomic
from agent.server import ServerKey
from attestor.digests import KeyId
from attestor.errors import ConfigError, InvalidInput, Unavailable
from attestor.verify import TrustedKey

__all__ = ["PINS_FILE", "Pins", "PublicKeyEntry", "load_pins", "save_pins", "trusted_keys"]

PINS_FILE: Final = "pinned-keys.json"
_FORMAT: Final = 1
_MAX_BYTES: Final = 4 * 1024 * 1024
_MEMBERS: Final = frozenset({"source", "operator_sha256", "version", "keys"})
_KEY_MEMBERS: Final = frozenset({"keyid", "algorithm", "public_key_pem", "status"})

Source = Literal["tofu", "operator"]


class PublicKeyEntry(Protocol):
    """A server key with its status (:class:`agent.server.ServerKey`)."""

    @property
    def status(self) -> str: ...

    def to_trusted_key(self) -> TrustedKey: ...


def trusted_keys(keys: Iterable[PublicKeyEntry]) -> list[TrustedKey]:
    """The keys that are not revoked, one per public key.

    Raises:
        InvalidInput: if a PEM is not an accepted public key.
    """
    trusted: list[TrustedKey] = []
    for key in keys:
        if key.status == "revoked":
            continue
        candidate = key.to_trusted_key()
        if all(candidate.public_key != t.public_key for t in trusted):
            trusted.append(candidate)
    return trusted


@dataclass(frozen=True)
class Pins:
    """The pinned set: where it came from, its version and its keys."""

    #: ``tofu``: the server's set at first registration; ``operator``: --pinned-keys.
    source: Source
    #: The key set version pinned (0 for operator keys: any signed set is newer).
    version: int
    #: Revoked keys are kept but never trusted.
    keys: tuple[ServerKey, ...]
    #: sha256 of the operator's keys, to notice when the operator changes them.
    operator_sha256: str | None = None

    def trusted_keys(self) -> list[TrustedKey]:
        """The pinned keys that are not revoked, one per public key."""
        return trusted_keys(self.keys)


def _to_doc(pins: Pins) -> dict[str, Any]:
    return {
        "source": pins.source,
        "operator_sha256": pins.operator_sha256,
        "version": pins.version,
        "keys": [
            {
                "keyid": k.keyid,
                "algorithm": k.algorithm,
                "public_key_pem": k.public_key_pem,
                "status": k.status,
            }
            for k in pins.keys
        ],
    }


def _key(doc: object) -> ServerKey:
    if not isinstance(doc, dict) or set(doc) != _KEY_MEMBERS:
        raise InvalidInput(f"a key must have exactly {sorted(_KEY_MEMBERS)}")
    if not all(isinstance(doc[m], str) for m in _KEY_MEMBERS):
        raise InvalidInput("key members must be strings")
    key = ServerKey(KeyId(doc["keyid"]), doc["algorithm"], doc["public_key_pem"], doc["status"])
    key.to_trusted_key()  # the PEM must still load
    return key


def _from_bytes(data: bytes) -> Pins:
    doc = unseal(data, "pins", _FORMAT, what="pinned keys", max_bytes=_MAX_BYTES)
    if set(doc) != _MEMBERS:
        raise InvalidInput(f"pins: expected exactly the members {sorted(_MEMBERS)}")
    if doc["source"] not in ("tofu", "operator"):
        raise InvalidInput("source must be tofu or operator")
    if type(doc["version"]) is not int or doc["version"] < 0:
        raise InvalidInput("version must be an integer >= 0")
    if doc["operator_sha256"] is not None and not isinstance(doc["operator_sha256"], str):
        raise InvalidInput("operator_sha256 must be a string or null")
    if not isinstance(doc["keys"], list) or not doc["keys"]:
        raise InvalidInput("keys must be a non-empty list")
    return Pins(
        source=doc["source"],
        version=doc["version"],
        keys=tuple(_key(k) for k in doc["keys"]),
        operator_sha256=doc["operator_sha256"],
    )


def load_pins(state_dir: Path) -> Pins | None:
    """The pinned set, or None when nothing was pinned yet.

    Raises:
        ConfigError: the file exists but cannot be read or trusted.
    """
    path = state_dir / PINS_FILE
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the pinned server keys {path}: {e.strerror}") from e
    try:
        return _from_bytes(data)
    except InvalidInput as e:
        raise ConfigError(
            f"pinned server keys {path} are unusable ({e.message}); the agent will not "
            "trust the server's keys again on its own: remove the file to pin them anew, "
            "or give --pinned-keys"
        ) from e


def save_pins(state_dir: Path, pins: Pins) -> None:
    """Write ``pins`` atomically and durably.

    Raises:
        Unavailable: if the disk refuses (full, read-only, I/O error).
    """
    data = seal("pins", _FORMAT, _to_doc(pins))
    path = state_dir / PINS_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, data)
    except OSError as e:
        raise Unavailable(f"cannot write the pinned server keys {path}: {e}") from e
