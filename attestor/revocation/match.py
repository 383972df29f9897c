# SPDX-License-Identifier: Apache-2.0
"""Matching attestations against a set of revocations, in O(1) per kind.

A :class:`RevocationSet` is immutable: agents build a new one per feed page
(:meth:`RevocationSet.with_added`). Its :attr:`~RevocationSet.version` (the
highest sequence) belongs in every cache key of a verification result, so a new
revocation invalidates cached results instead of being hidden by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from attestor.errors import InvalidInput
from attestor.revocation.model import (
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    SubjectTarget,
    TimeWindowTarget,
)

__all__ = ["AttestationMeta", "RevocationSet"]


@dataclass(frozen=True, kw_only=True)
class AttestationMeta:
    """What revocations are matched on; ``None`` means "not known" and matches
    nothing, except that an unknown ``issued_at`` matches every time window
    that applies (fail closed: an unknown time cannot be shown to be outside).

    The server fills it from the stored row (its own recorded ``issued_at``);
    the verifier fills it from the verified statement.
    """

    attestation_id: str | None = None
    #: ``sha256:<hex>`` of the layer (the statement subject).
    layer_digest: str | None = None
    #: ``sha256:<hex>`` of the image manifest the attestation was issued for.
    image_digest: str | None = None
    #: keyid of the key that signed (as ``GET /v1/keys`` publishes it).
    keyid: str | None = None
    policy_id: str | None = None
    policy_version: str | None = None
    issued_at: datetime | None = None
    #: sha256 hex of the envelope's PAE, what its signatures sign
    #: (:func:`attestor.dsse.pae_sha256`, ``VerifiedStatement.pae_sha256``).
    pae_sha256: str | None = None

    def __post_init__(self) -> None:
        """Raises: InvalidInput: if ``issued_at`` is naive (it could not be compared)."""
        if self.issued_at is not None and self.issued_at.tzinfo is None:
            raise InvalidInput("issued_at: must be a timezone-aware datetime")


class RevocationSet:
    """An immutable, indexed set of revocations.

    Each kind is a dict lookup; time windows (few by nature) are scanned, those
    bound to a key only for that key. When several revocations match, the one
    with the lowest sequence is reported, so the answer does not depend on the
    order revocations arrived in.
    """

    __slots__ = (
        "_by_attestation",
        "_by_image",
        "_by_key",
        "_by_pae",
        "_by_policy",
        "_by_sequence",
        "_by_subject",
        "_version",
        "_windows",
        "_windows_by_key",
    )

    def __init__(self, revocations: Iterable[Revocation] = ()) -> None:
        """Index ``revocations``; the same revocation twice is kept once.

        Raises:
            InvalidInput: if two different revocations share a sequence or an id.
        """
        self._by_sequence: dict[int, Revocation] = {}
        self._by_attestation: dict[str, Revocation] = {}
        self._by_pae: dict[str, Revocation] = {}
        self._by_subject: dict[str, Revocation] = {}
        self._by_image: dict[str, Revocation] = {}
        self._by_key: dict[str, Revocation] = {}
        self._by_policy: dict[tuple[str, str], Revocation] = {}
        self._windows: list[tuple[TimeWindowTarget, Revocation]] = []
        self._windows_by_key: dict[str, list[tuple[TimeWindowTarget, Revocation]]] = {}
        ids: dict[str, int] = {}
        for revocation in sorted(revocations, key=lambda r: r.sequence):
            known = self._by_sequence.get(revocation.sequence)
            if known is not None:
                if known != revocation:
                    raise InvalidInput(
                        f"two different revocations with sequence {revocation.sequence}"
                    )
                continue
            if ids.setdefault(revocation.id, revocation.sequence) != revocation.sequence:
                raise InvalidInput(f"revocation id {revocation.id!r} used by two sequences")
            self._by_sequence[revocation.sequence] = revocation
            self._index(revocation)
        self._version = max(self._by_sequence, default=0)

    def _index(self, r: Revocation) -> None:
        # Ascending sequence order, so setdefault keeps the earliest per target.
        t = r.target
        if isinstance(t, AttestationTarget):
            self._by_attestation.setdefault(t.attestation_id, r)
            self._by_pae.setdefault(t.pae_sha256, r)
        elif isinstance(t, SubjectTarget):
            self._by_subject.setdefault(t.digest, r)
        elif isinstance(t, ImageTarget):
            self._by_image.setdefault(t.digest, r)
        elif isinstance(t, KeyTarget):
            self._by_key.setdefault(t.keyid, r)
        elif isinstance(t, PolicyVersionTarget):
            self._by_policy.setdefault((t.policy_id, t.policy_version), r)
        elif t.keyid is None:
            self._windows.append((t, r))
        else:
            self._windows_by_key.setdefault(t.keyid, []).append((t, r))

    @property
    def version(self) -> int:
        """The highest sequence in the set (0 when empty); the feed cursor."""
        return self._version

    def __len__(self) -> int:
        return len(self._by_sequence)

    def __iter__(self) -> Iterator[Revocation]:
        """The revocations in ascending sequence order."""
        return iter(sorted(self._by_sequence.values(), key=lambda r: r.sequence))

    def __contains__(self, sequence: object) -> bool:
        return sequence in self._by_sequence

    def with_added(self, revocations: Iterable[Revocation]) -> RevocationSet:
        """A new set holding these revocations too (this one is unchanged).

        Raises:
            InvalidInput: if a new revocation conflicts with a known sequence or id.
        """
        return RevocationSet([*self._by_sequence.values(), *revocations])

    def is_key_revoked(self, keyid: str) -> bool:
        """Whether ``keyid`` is revoked outright (not merely for a time window).

        Such a key must no longer be trusted for anything, feed pages included.
        """
        return keyid in self._by_key

    def match(self, meta: AttestationMeta) -> Revocation | None:
        """The revocation (lowest sequence) that applies to ``meta``, or None."""
        found: list[Revocation] = []

        def look(index: dict[str, Revocation], value: str | None) -> None:
            if value is not None and (hit := index.get(value)) is not None:
                found.append(hit)

        look(self._by_attestation, meta.attestation_id)
        look(self._by_pae, meta.pae_sha256)
        look(self._by_subject, meta.layer_digest)
        look(self._by_image, meta.image_digest)
        look(self._by_key, meta.keyid)
        if meta.policy_id is not None and meta.policy_version is not None:
            hit = self._by_policy.get((meta.policy_id, meta.policy_version))
            if hit is not None:
                found.append(hit)
        windows = self._windows
        if meta.keyid is not None and meta.keyid in self._windows_by_key:
            windows = [*windows, *self._windows_by_key[meta.keyid]]
        for window, r in windows:
            if meta.issued_at is None or window.contains(meta.issued_at):
                found.append(r)
        return min(found, key=lambda r: r.sequence, default=None)
