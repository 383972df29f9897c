# SPDX-License-Identifier: Apache-2.0
"""The revocation model: what is revoked, why, by whom, and its feed sequence.

Spec: ``docs/revocation-feed.md``; JSON form: ``schemas/revocation.schema.json``.

A revocation is append-only history: the server assigns ``id``, ``sequence``
(a monotonic integer, the agent feed's cursor) and ``created_at``; nothing is
ever deleted or edited. Untrusted JSON is validated against the schema, then
built into frozen objects whose constructors re-check every invariant, so a
``Revocation`` built in Python is as safe as one parsed from JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from attestor.digests import Digest, KeyId, Sha256Hex
from attestor.errors import InvalidInput
from attestor.schemas import validate

__all__ = [
    "KINDS",
    "AttestationTarget",
    "ImageTarget",
    "KeyTarget",
    "PolicyVersionTarget",
    "Revocation",
    "SubjectTarget",
    "Target",
    "TimeWindowTarget",
    "format_time",
    "parse_target",
    "parse_time",
]

#: Every target kind, in the order the spec lists them.
KINDS: Final = ("attestation", "subject", "image", "key", "policy_version", "time_window")

_MAX_SEQUENCE: Final = 2**63 - 1
# The same patterns as schemas/revocation.schema.json ($defs), so a Revocation
# built in Python always serializes to a document the schema accepts.
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_DIGEST_RE: Final = re.compile(r"sha256:[0-9a-f]{64}")
_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
_KEYID_RE: Final = re.compile(r"[\x21-\x7e]{1,256}")
_TIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidInput(f"{what}: malformed value {str(value)[:80]!r}")
    return value


def _label(value: object, what: str, max_chars: int = 256) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what}: must be a non-empty string")
    if len(value) > max_chars:
        raise InvalidInput(f"{what}: over {max_chars} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what}: not valid Unicode (lone surrogate)") from None
    return value


def _aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what}: must be a timezone-aware datetime")
    return value


def parse_time(value: object, what: str) -> datetime:
    """Parse an RFC 3339 time with an explicit offset (``Z`` or ``+hh:mm``).

    Raises:
        InvalidInput: if ``value`` is not such a string or not a real time.
    """
    # fromisoformat alone accepts dates without a time or a zone; the pattern
    # pins the RFC 3339 profile the schema allows.
    text = _check(_TIME_RE, value, what)
    try:
        # Overflow: year 1 or 9999 with an offset leaves datetime's range in UTC.
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise InvalidInput(f"{what}: not a valid time ({e})") from None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; microseconds only when non-zero (deterministic).

    Raises:
        InvalidInput: if ``moment`` is naive or out of range once in UTC.
    """
    try:
        utc = _aware(moment, "time").astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"time {moment!r} is out of range in UTC") from None
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


@dataclass(frozen=True)
class AttestationTarget:
    """One attestation, by id and by what its signatures sign.

    ``pae_sha256`` (:func:`attestor.dsse.pae_sha256`) lets holders of the
    envelope alone (agents, bulk verification) match it. It is not a hash of
    the envelope JSON: keyids, extra or reordered signatures and the JSON
    layout are unsigned, so a hash over them would let anyone turn a revoked
    envelope into one that no revocation names.
    """

    attestation_id: str
    pae_sha256: Sha256Hex
    kind: ClassVar[str] = "attestation"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: on a malformed id or hash."""
        _check(_ID_RE, self.attestation_id, "target.attestation_id")
        _check(_HEX_RE, self.pae_sha256, "target.pae_sha256")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": self.kind,
            "attestation_id": self.attestation_id,
            "pae_sha256": self.pae_sha256,
        }


@dataclass(frozen=True)
class SubjectTarget:
    """Every attestation whose subject is this layer digest, in any image."""

    digest: Digest
    kind: ClassVar[str] = "subject"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: if the digest is not ``sha256:<hex>``."""
        _check(_DIGEST_RE, self.digest, "target.digest")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"kind": self.kind, "digest": self.digest}


@dataclass(frozen=True)
class ImageTarget:
    """Every attestation issued for this image manifest digest (not the layer elsewhere)."""

    digest: Digest
    kind: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: if the digest is not ``sha256:<hex>``."""
        _check(_DIGEST_RE, self.digest, "target.digest")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"kind": self.kind, "digest": self.digest}


@dataclass(frozen=True)
class KeyTarget:
    """Every attestation this key signed, whatever time it claims (the leaked-key case)."""

    keyid: KeyId
    kind: ClassVar[str] = "key"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: on a malformed keyid."""
        _check(_KEYID_RE, self.keyid, "target.keyid")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"kind": self.kind, "keyid": self.keyid}


@dataclass(frozen=True)
class PolicyVersionTarget:
    """Every attestation issued under this version of this policy."""

    policy_id: str
    policy_version: str
    kind: ClassVar[str] = "policy_version"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: on an empty or over-long label."""
        _label(self.policy_id, "target.policy_id")
        _label(self.policy_version, "target.policy_version")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": self.kind,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class TimeWindowTarget:
    """Every attestation issued in ``[not_before, not_after)``, optionally of one key.

    The issue time is what the signer wrote (or what the server recorded), so a
    window only helps while the key is NOT in an attacker's hands (a compromised
    builder or policy period): the holder of a leaked key can backdate. For a
    leaked key, revoke the key (:class:`KeyTarget`).
    """

    not_before: datetime | None = None
    not_after: datetime | None = None
    keyid: KeyId | None = None
    kind: ClassVar[str] = "time_window"

    def __post_init__(self) -> None:
        """Raises: InvalidInput: without a bound, on naive times, or an empty window."""
        if self.not_before is None and self.not_after is None:
            raise InvalidInput("target: a time window needs not_before, not_after or both")
        if self.not_before is not None:
            _aware(self.not_before, "target.not_before")
        if self.not_after is not None:
            _aware(self.not_after, "target.not_after")
        if (
            self.not_before is not None
            and self.not_after is not None
            and self.not_after <= self.not_before
        ):
            raise InvalidInput("target: not_after must be later than not_before")
        if self.keyid is not None:
            _check(_KEYID_RE, self.keyid, "target.keyid")

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` is inside the half-open window."""
        if self.not_before is not None and moment < self.not_before:
            return False
        return self.not_after is None or moment < self.not_after

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; absent bounds and key are omitted."""
        doc: dict[str, Any] = {"kind": self.kind}
        if self.not_before is not None:
            doc["not_before"] = format_time(self.not_before)
        if self.not_after is not None:
            doc["not_after"] = format_time(self.not_after)
        if self.keyid is not None:
            doc["keyid"] = self.keyid
        return doc


Target = (
    AttestationTarget
    | SubjectTarget
    | ImageTarget
    | KeyTarget
    | PolicyVersionTarget
    | TimeWindowTarget
)

_TARGET_MEMBERS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    # kind -> (required, optional) members besides "kind"
    "attestation": (frozenset({"attestation_id", "pae_sha256"}), frozenset()),
    "subject": (frozenset({"digest"}), frozenset()),
    "image": (frozenset({"digest"}), frozenset()),
    "key": (frozenset({"keyid"}), frozenset()),
    "policy_version": (frozenset({"policy_id", "policy_version"}), frozenset()),
    "time_window": (frozenset(), frozenset({"not_before", "not_after", "keyid"})),
}


def parse_target(doc: object) -> Target:
    """Parse a target object (e.g. from ``POST /v1/revocations``), strictly.

    Raises:
        InvalidInput: on an unknown kind, a missing or unknown member, or a bad value.
    """
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"target: expected an object, got {type(doc).__name__}")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in _TARGET_MEMBERS:
        raise InvalidInput(f"target.kind: must be one of {list(KINDS)}, got {str(kind)[:40]!r}")
    required, optional = _TARGET_MEMBERS[kind]
    members = set(doc) - {"kind"}
    if required - members:
        raise InvalidInput(f"target: missing member(s) {sorted(required - members)}")
    unknown = members - required - optional
    if unknown:
        raise InvalidInput(f"target: unknown member(s) {sorted(map(str, unknown))[:5]}")
    if kind == "attestation":
        return AttestationTarget(doc["attestation_id"], doc["pae_sha256"])
    if kind == "subject":
        return SubjectTarget(doc["digest"])
    if kind == "image":
        return ImageTarget(doc["digest"])
    if kind == "key":
        return KeyTarget(doc["keyid"])
    if kind == "policy_version":
        return PolicyVersionTarget(doc["policy_id"], doc["policy_version"])
    not_before = doc.get("not_before")
    not_after = doc.get("not_after")
    return TimeWindowTarget(
        not_before=None if not_before is None else parse_time(not_before, "target.not_before"),
        not_after=None if not_after is None else parse_time(not_after, "target.not_after"),
        keyid=doc.get("keyid"),
    )


@dataclass(frozen=True)
class Revocation:
    """One revocation: a target, why, who, when, and its place in the feed."""

    id: str
    #: Monotonic, assigned by the server; the agent feed's cursor (>= 1).
    sequence: int
    target: Target
    reason: str
    actor: str
    created_at: datetime

    def __post_init__(self) -> None:
        """Raises: InvalidInput: if any field breaks the schema's rules."""
        _check(_ID_RE, self.id, "id")
        # bool is an int subclass; a JSON true must never become sequence 1.
        if type(self.sequence) is not int or not 1 <= self.sequence <= _MAX_SEQUENCE:
            raise InvalidInput(f"sequence: must be an integer in 1..2^63-1, got {self.sequence!r}")
        if not isinstance(self.target, Target):
            raise InvalidInput(f"target: unexpected type {type(self.target).__name__}")
        _label(self.reason, "reason", max_chars=1000)
        _label(self.actor, "actor")
        _aware(self.created_at, "created_at")

    @property
    def kind(self) -> str:
        """The target kind (one of :data:`KINDS`)."""
        return self.target.kind

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``schemas/revocation.schema.json``)."""
        return {
            "id": self.id,
            "sequence": self.sequence,
            "target": self.target.to_dict(),
            "reason": self.reason,
            "actor": self.actor,
            "created_at": format_time(self.created_at),
        }

    def to_json(self) -> bytes:
        """Deterministic JSON: sorted keys, no whitespace, UTF-8."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @classmethod
    def from_dict(cls, doc: object) -> Revocation:
        """Validate an untrusted JSON object against the schema, then build it.

        Raises:
            InvalidInput: naming the first failing path or invariant.
        """
        validate(doc, "revocation")
        if not isinstance(doc, Mapping):  # the schema says object; keeps mypy honest
            raise InvalidInput("revocation: expected an object")
        return cls(
            id=doc["id"],
            sequence=doc["sequence"],
            target=parse_target(doc["target"]),
            reason=doc["reason"],
            actor=doc["actor"],
            created_at=parse_time(doc["created_at"], "created_at"),
        )
