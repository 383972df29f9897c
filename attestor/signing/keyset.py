# SPDX-License-Identifier: Apache-2.0
"""The signed key set: the server's public keys, versioned, for agents to pin.

Spec: ``docs/key-set.md``; payload schema: ``schemas/key-set.schema.json``.
The payload is deterministic JSON (a function of the key table alone) carried
in a DSSE envelope of type :data:`KEY_SET_PAYLOAD_TYPE`. The server signs it
with every key that is not revoked, so a set that adds a key is signed by the
keys it replaces: an agent that pinned any of them can follow the rotation,
however many versions it missed. The agent accepts a new set only if one of
the keys it already pins verifies it and its version is higher.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream

from attestor.dsse import Envelope, EnvelopeLimits, parse_envelope
from attestor.errors import InvalidInput, VerificationError
from attestor.json_strict import loads_strict
from attestor.revocation.model import format_time, parse_time
from attestor.schemas import validate
from attestor.signing.dsse import sign_envelope
from attestor.signing.keys import public_key_info
from attestor.verify import Verifier
from attestor.verify.keys import TrustedKey

__all__ = [
    "KEY_SET_PAYLOAD_TYPE",
    "MAX_KEYS",
    "MAX_SIGNERS",
    "KeySet",
    "KeySetKey",
    "build_key_set",
    "key_set_version",
    "parse_key_set",
    "sign_key_set",
    "verify_key_set",
]

#: DSSE payloadType of a key set. Distinct from in-toto's and the feed's, so a
#: key-set signature can never pass for an attestation or a feed page.
KEY_SET_PAYLOAD_TYPE: Final = "application/vnd.attestor.key-set.v1+json"
#: Most keys in one set (the schema's maxItems).
MAX_KEYS: Final = 256
#: Most signatures on one set: DSSE envelopes are parsed with at most 16.
MAX_SIGNERS: Final = EnvelopeLimits().max_signatures
_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
_STATUSES: Final = ("active", "retired", "revoked")


@dataclass(frozen=True, kw_only=True)
class KeySetKey:
    """One public key of a set, with its lifecycle."""

    keyid: str
    algorithm: str
    public_key_pem: str
    status: str
    created: datetime
    retired: datetime | None = None
    revoked: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The key as the payload carries it."""
        return {
            "keyid": self.keyid,
            "algorithm": self.algorithm,
            "public_key_pem": self.public_key_pem,
            "status": self.status,
            "created": format_time(self.created),
            "retired": None if self.retired is None else format_time(self.retired),
            "revoked": None if self.revoked is None else format_time(self.revoked),
        }

    def trusted_key(self) -> TrustedKey:
        """The key for a verifier.

        Raises:
            InvalidInput: if the PEM is not an accepted public key.
        """
        return TrustedKey.from_pem(self.public_key_pem, self.keyid)


@dataclass(frozen=True)
class KeySet:
    """A parsed (and, from :func:`verify_key_set`, verified) key set."""

    version: int
    keys: tuple[KeySetKey, ...]
    #: The exact payload bytes (what was signed, what an agent stores).
    payload: bytes
    #: keyids of the trusted keys that verified it; empty when only parsed.
    signed_by: tuple[str, ...] = ()

    def usable(self) -> tuple[KeySetKey, ...]:
        """The keys that verify (active and retired; never revoked)."""
        return tuple(k for k in self.keys if k.status != "revoked")

    def trusted_keys(self) -> list[TrustedKey]:
        """:meth:`usable` as verifier keys.

        Raises:
            InvalidInput: if a PEM is not an accepted public key (parsing refused it already).
        """
        return [k.trusted_key() for k in self.usable()]

    def same_keys(self, other: KeySet) -> bool:
        """Whether both list the same keys with the same lifecycle."""
        return self.keys == other.keys


def key_set_version(keys: Sequence[KeySetKey]) -> int:
    """The version of a key table: the number of lifecycle events it records.

    Keys are never deleted, and each key is created once, retired at most once
    and revoked at most once (revoked is final), so every change to the table
    raises this count: it is a version without a stored counter. A database
    restored from an older backup gives a lower version, which agents refuse.
    """
    return sum(1 + (k.retired is not None) + (k.revoked is not None) for k in keys)


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_key_set(keys: Sequence[KeySetKey]) -> bytes:
    """The deterministic payload of the set of ``keys`` (oldest first).

    Raises:
        InvalidInput: no key, too many, a duplicate, or a key the parser
            would refuse (so the server never signs what agents reject).
    """
    payload = _dumps({"version": key_set_version(keys), "keys": [k.to_dict() for k in keys]})
    parse_key_set(payload)
    return payload


def _key(doc: dict[str, Any]) -> KeySetKey:
    key = KeySetKey(
        keyid=doc["keyid"],
        algorithm=doc["algorithm"],
        public_key_pem=doc["public_key_pem"],
        status=doc["status"],
        created=parse_time(doc["created"], "created"),
        retired=None if doc["retired"] is None else parse_time(doc["retired"], "retired"),
        revoked=None if doc["revoked"] is None else parse_time(doc["revoked"], "revoked"),
    )
    info = public_key_info(key.public_key_pem)
    # The keyid and algorithm are derived from the PEM: a set that says
    # otherwise was not built by a server, and the two readings would differ.
    if info.keyid != key.keyid or info.algorithm != key.algorithm:
        raise InvalidInput(f"key {key.keyid[:80]!r}: keyid or algorithm does not match its PEM")
    if (key.status == "revoked") != (key.revoked is not None):
        raise InvalidInput(f"key {key.keyid[:80]!r}: status and revoked time disagree")
    return key


def parse_key_set(payload: bytes) -> KeySet:
    """Parse key-set payload bytes strictly; no signature is checked here.

    Raises:
        InvalidInput: if the bytes are not a key set that meets the schema, a
            PEM is not an accepted key, a keyid does not match its PEM, a key
            is listed twice, more than one key is active, or the version is
            below what its keys record.
    """
    if not isinstance(payload, bytes):
        raise InvalidInput(f"key set: expected bytes, got {type(payload).__name__}")
    doc = loads_strict(payload, what="key set", max_bytes=_MAX_PAYLOAD_BYTES)
    validate(doc, "key-set")
    if not isinstance(doc, dict):  # the schema requires an object; keeps mypy honest
        raise InvalidInput("key set: expected a JSON object")
    keys = tuple(_key(k) for k in doc["keys"])
    if len({k.keyid for k in keys}) != len(keys):
        raise InvalidInput("key set: a keyid is listed twice")
    if sum(k.status == "active" for k in keys) > 1:
        raise InvalidInput("key set: more than one active key")
    version = doc["version"]
    if version < key_set_version(keys):
        raise InvalidInput(f"key set: version {version} is below its keys' {key_set_version(keys)}")
    return KeySet(version=version, keys=keys, payload=payload)


def sign_key_set(payload: bytes, signers: Sequence[tuple[Signer, str]]) -> Envelope:
    """One DSSE envelope of type :data:`KEY_SET_PAYLOAD_TYPE` with a signature per signer.

    Args:
        payload: from :func:`build_key_set`.
        signers: (signer, keyid) pairs, at most :data:`MAX_SIGNERS`.

    Raises:
        InvalidInput: no signer or too many.
        UpstreamError: if a signer fails.
    """
    if not 1 <= len(signers) <= MAX_SIGNERS:
        raise InvalidInput(f"a key set needs 1..{MAX_SIGNERS} signers, got {len(signers)}")
    signatures = tuple(
        sig
        for signer, keyid in signers
        for sig in sign_envelope(
            payload, signer, keyid=keyid, payload_type=KEY_SET_PAYLOAD_TYPE
        ).signatures
    )
    return Envelope(payload_type=KEY_SET_PAYLOAD_TYPE, payload=payload, signatures=signatures)


def verify_key_set(envelope: bytes, keys: Sequence[TrustedKey]) -> KeySet:
    """Verify a signed key set with the keys an agent pins (threshold 1).

    Args:
        envelope: the DSSE envelope JSON (``GET /v1/keys/set``).
        keys: the trusted keys; any one of them must have signed.

    Raises:
        InvalidInput: if the envelope itself is malformed.
        VerificationError: a wrong payload type, no signature by a trusted
            key, or a signed payload that is not a valid key set.
    """
    if not keys:
        raise VerificationError("no trusted key to verify the key set with")
    # The signature is checked by the one verifier, as every other signed document.
    signed = Verifier(keys=keys).verify_payload(
        parse_envelope(envelope), payload_type=KEY_SET_PAYLOAD_TYPE
    )
    try:
        key_set = parse_key_set(signed.payload)
    except InvalidInput as e:
        raise VerificationError(f"signed key set is invalid: {e.message}") from None
    return replace(key_set, signed_by=signed.keys)
