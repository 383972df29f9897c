# SPDX-License-Identifier: Apache-2.0
"""Revocation rows, the feed row, and attestation status flips.

History is append-only: nothing here updates or deletes a revocation. Each
insert first bumps the one-row counter ``revocation_feed.last_sequence``; that
``UPDATE`` holds the row lock (PostgreSQL) or the write lock (SQLite) until
commit, so sequences become visible in commit order and an agent reading
``latest`` can never skip a sequence that commits later (docs/revocation-feed.md).
"""

from __future__ import annotations

import functools
import threading
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.orm import Session

from attestor.errors import ConfigError, InvalidInput, NotFound
from attestor.revocation import (
    KINDS,
    AttestationMeta,
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    RevocationSet,
    SubjectTarget,
    Target,
    TimeWindowTarget,
    parse_target,
)
from attestor.store._commits import CommitCounter
from attestor.store._cursor import check_limit, decode_cursor, split_page
from attestor.store.models import (
    AttestationModel,
    ImageModel,
    RevocationFeedModel,
    RevocationModel,
    SigningKeyModel,
)

__all__ = [
    "MAX_PAGE",
    "FeedState",
    "StoredAttestation",
    "AttestationIds",
    "add_revocation",
    "attestation_metas",
    "current_revocation_set",
    "resolve_attestation",
    "feed_state",
    "find_key_revocation",
    "get_revocation",
    "list_revocations",
    "local_feed_changes",
    "mark_revoked",
    "policy_versions_in_use",
    "reserve_sequence",
    "revocations_after",
    "rotate_feed_id",
]

MAX_PAGE = 500
_FEED_ROW = 1


@dataclass(frozen=True)
class FeedState:
    """What the feed's cheap path needs, read in one primary-key query."""

    feed_id: str
    #: The highest committed sequence (0 when there is none).
    latest: int
    #: keyid of the active signing key, None when none is active.
    active_keyid: str | None


@functools.cache
def _feed_state_query() -> Select[str, int, str]:
    # Built once: constructing the statement costs more than running it (the 304 path).
    return (
        select(
            RevocationFeedModel.feed_id, RevocationFeedModel.last_sequence, SigningKeyModel.keyid
        )
        .select_from(RevocationFeedModel)
        # At most one active key (a partial unique index), so this stays one row.
        .outerjoin(SigningKeyModel, SigningKeyModel.status == "active")
        .where(RevocationFeedModel.id == _FEED_ROW)
    )


def feed_state(session: Session) -> FeedState:
    """Feed id, latest sequence and active keyid in one query (the 304 path).

    Raises:
        ConfigError: the feed row is missing (the database was not migrated).
    """
    # Core execution on the session's connection: no ORM result machinery needed.
    found = session.connection().execute(_feed_state_query()).first()
    if found is None:
        raise ConfigError("the revocation feed row is missing; run the migrations")
    return FeedState(feed_id=found[0], latest=int(found[1]), active_keyid=found[2])


def rotate_feed_id(session: Session) -> str:
    """Give the feed a new id; run it after restoring a database backup.

    A restored database hands out again sequences agents have already seen
    under the old id. With a new id, agents start again from cursor 0 (keeping
    what they know) instead of skipping those sequences.

    Raises:
        ConfigError: the feed row is missing (the migrations have not run).
    """
    new_id = f"feed-{uuid.uuid4()}"
    result = session.execute(
        update(RevocationFeedModel)
        .where(RevocationFeedModel.id == _FEED_ROW)
        .values(feed_id=new_id)
    )
    if not getattr(result, "rowcount", 0):
        raise ConfigError("the revocation feed row is missing; run the migrations")
    _FEED_CHANGES.mark(session)
    return new_id


def reserve_sequence(session: Session) -> int:
    """Take the next sequence; call it FIRST in the inserting transaction.

    The ``UPDATE`` takes the lock that serialises revocation inserts until the
    caller commits; a rolled-back transaction gives its number back.

    Raises:
        ConfigError: the feed row is missing.
    """
    value = session.execute(
        update(RevocationFeedModel)
        .where(RevocationFeedModel.id == _FEED_ROW)
        .values(last_sequence=RevocationFeedModel.last_sequence + 1)
        .returning(RevocationFeedModel.last_sequence)
    ).scalar()
    if value is None:
        raise ConfigError("the revocation feed row is missing; run the migrations")
    _FEED_CHANGES.mark(session)
    return int(value)


# Feed changes (new sequence, new feed id) committed by this process. A cache
# of the feed state compares it on every use, so a revocation made here is
# served at once; other processes see it when their cache expires.
_FEED_CHANGES: Final = CommitCounter()


def local_feed_changes() -> int:
    """How many feed changes this process has committed (it only grows)."""
    return _FEED_CHANGES.value


def add_revocation(session: Session, revocation: Revocation) -> None:
    """Insert a revocation whose sequence came from :func:`reserve_sequence`."""
    session.add(
        RevocationModel(
            id=revocation.id,
            sequence=revocation.sequence,
            kind=revocation.kind,
            target=revocation.target.to_dict(),
            reason=revocation.reason,
            actor=revocation.actor,
            created_at=revocation.created_at,
        )
    )
    session.flush()


def _revocation(m: RevocationModel) -> Revocation:
    return Revocation(
        id=m.id,
        sequence=int(m.sequence),
        target=parse_target(m.target),
        reason=m.reason,
        actor=m.actor,
        created_at=m.created_at,
    )


def get_revocation(session: Session, revocation_id: str) -> Revocation:
    """One revocation.

    Raises:
        NotFound: no revocation has this id.
    """
    model = session.get(RevocationModel, revocation_id)
    if model is None:
        raise NotFound(f"no revocation with id {revocation_id[:64]!r}")
    return _revocation(model)


def list_revocations(
    session: Session, *, kind: str | None = None, limit: int = 100, cursor: str | None = None
) -> tuple[list[Revocation], str | None]:
    """A page of revocations in sequence order, and the cursor of the next page.

    Raises:
        InvalidInput: an unknown kind, a limit outside 1..500 or a foreign cursor.
    """
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind[:40]!r}")
    check_limit(limit, MAX_PAGE)
    query = select(RevocationModel)
    if kind is not None:
        query = query.where(RevocationModel.kind == kind)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(RevocationModel.sequence > after)
    query = query.order_by(RevocationModel.sequence).limit(limit + 1)
    rows = [_revocation(m) for m in session.scalars(query)]
    return split_page(rows, limit, lambda r: (r.sequence,))


def revocations_after(session: Session, *, since: int, latest: int, limit: int) -> list[Revocation]:
    """Revocations with ``since < sequence <= latest``, ascending, at most ``limit``."""
    query = (
        select(RevocationModel)
        .where(RevocationModel.sequence > since, RevocationModel.sequence <= latest)
        .order_by(RevocationModel.sequence)
        .limit(limit)
    )
    return [_revocation(m) for m in session.scalars(query)]


def find_key_revocation(session: Session, keyid: str) -> Revocation | None:
    """The earliest revocation of ``keyid`` outright, if any (key revocations are few)."""
    query = select(RevocationModel).where(RevocationModel.kind == "key")
    for model in session.scalars(query.order_by(RevocationModel.sequence)):
        if model.target.get("keyid") == keyid:
            return _revocation(model)
    return None


# The set is rebuilt only when the feed moved: (feed id -> set), per process.
# Keyed by feed id so that two databases in one process never share a set.
_sets: dict[str, RevocationSet] = {}
_sets_lock = threading.Lock()


def current_revocation_set(session: Session) -> RevocationSet:
    """The committed revocations as a :class:`RevocationSet`, cached by version.

    One primary-key query when nothing changed; otherwise only the new rows are
    read. Its ``version`` belongs in every cache key of verification results.

    Raises:
        ConfigError: the feed row is missing.
    """
    state = feed_state(session)
    with _sets_lock:
        cached = _sets.get(state.feed_id)
    if cached is not None and cached.version == state.latest:
        return cached
    # A cached set ahead of the database means it was restored: start over.
    base = cached if cached is not None and cached.version < state.latest else RevocationSet()
    new = revocations_after(session, since=base.version, latest=state.latest, limit=2**62)
    result = base.with_added(new)
    with _sets_lock:
        known = _sets.get(state.feed_id)
        if known is None or known.version != result.version:
            _sets[state.feed_id] = result
    return result


def _affected(target: Target) -> ColumnElement[bool]:
    a = AttestationModel
    if isinstance(target, AttestationTarget):
        # Every stored copy of the signed statement, not only the named row.
        return or_(a.id == target.attestation_id, a.pae_sha256 == target.pae_sha256)
    if isinstance(target, SubjectTarget):
        return a.layer_digest == target.digest
    if isinstance(target, ImageTarget):
        images = select(ImageModel.id).where(ImageModel.manifest_digest == target.digest)
        return a.image_id.in_(images)
    if isinstance(target, KeyTarget):
        return a.keyid == target.keyid
    if isinstance(target, PolicyVersionTarget):
        return and_(a.policy_id == target.policy_id, a.policy_version == target.policy_version)
    window: TimeWindowTarget = target
    conditions: list[ColumnElement[bool]] = []
    # Half-open [not_before, not_after) on the issue time the server recorded.
    if window.not_before is not None:
        conditions.append(a.created_at >= window.not_before)
    if window.not_after is not None:
        conditions.append(a.created_at < window.not_after)
    if window.keyid is not None:
        conditions.append(a.keyid == window.keyid)
    return and_(*conditions)


def mark_revoked(session: Session, target: Target) -> int:
    """Set status ``revoked`` on every attestation ``target`` covers; returns how many changed."""
    result = session.execute(
        update(AttestationModel)
        .where(_affected(target), AttestationModel.status != "revoked")
        .values(status="revoked")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class StoredAttestation:
    """What a re-verification sweep needs of one attestation row."""

    meta: AttestationMeta
    envelope: bytes
    status: str
    registry: str
    repository: str


def attestation_metas(
    session: Session,
    *,
    keyid: str | None = None,
    policy_id: str | None = None,
    image_id: str | None = None,
    status: str | None = "valid",
    after: str = "",
    limit: int = 500,
) -> list[StoredAttestation]:
    """Up to ``limit`` attestations with id > ``after`` (optionally of one key, policy, image)."""
    query = (
        select(AttestationModel, ImageModel)
        .join(ImageModel, AttestationModel.image_id == ImageModel.id)
        .where(AttestationModel.id > after)
    )
    if keyid is not None:
        query = query.where(AttestationModel.keyid == keyid)
    if policy_id is not None:
        query = query.where(AttestationModel.policy_id == policy_id)
    if image_id is not None:
        query = query.where(AttestationModel.image_id == image_id)
    if status is not None:
        query = query.where(AttestationModel.status == status)
    rows = session.execute(query.order_by(AttestationModel.id).limit(limit)).all()
    return [
        StoredAttestation(
            meta=_meta(m, image),
            envelope=bytes(m.envelope),
            status=m.status,
            registry=image.registry_host,
            repository=image.repository,
        )
        for m, image in rows
    ]


def _meta(m: AttestationModel, image: ImageModel) -> AttestationMeta:
    return AttestationMeta(
        attestation_id=m.id,
        layer_digest=m.layer_digest,
        image_digest=image.manifest_digest,
        keyid=m.keyid,
        policy_id=m.policy_id,
        policy_version=m.policy_version,
        issued_at=m.created_at,
        pae_sha256=m.pae_sha256,
    )


def policy_versions_in_use(session: Session) -> set[tuple[str, str]]:
    """The distinct (policy id, policy version) pairs of ``valid`` attestations."""
    query = (
        select(AttestationModel.policy_id, AttestationModel.policy_version)
        .where(AttestationModel.status == "valid")
        .distinct()
    )
    return {(p, v) for p, v in session.execute(query)}


@dataclass(frozen=True)
class AttestationIds:
    """The ways one stored attestation is named."""

    attestation_id: str
    #: The address of the stored envelope bytes.
    envelope_sha256: str
    #: Its identity: what its signatures sign (:func:`attestor.dsse.pae_sha256`).
    pae_sha256: str


def resolve_attestation(
    session: Session,
    *,
    attestation_id: str | None = None,
    envelope_sha256: str | None = None,
    pae_sha256: str | None = None,
) -> AttestationIds:
    """The stored attestation these names agree on.

    Each name given must belong to the same row. By ``pae_sha256`` alone, the
    oldest row with that signed content is taken (they are the same statement).

    Raises:
        InvalidInput: no name given, or names of two different attestations.
        NotFound: no attestation has the name(s) given.
    """
    a = AttestationModel
    query = select(a.id, a.envelope_sha256, a.pae_sha256)
    if attestation_id is not None:
        query = query.where(a.id == attestation_id)
    elif envelope_sha256 is not None:
        query = query.where(a.envelope_sha256 == envelope_sha256)
    elif pae_sha256 is not None:
        query = query.where(a.pae_sha256 == pae_sha256)
    else:
        raise InvalidInput("target: name the attestation by attestation_id or a digest")
    row = session.execute(query.order_by(a.created_at, a.id).limit(1)).first()
    if row is None:
        named = attestation_id or envelope_sha256 or pae_sha256 or ""
        raise NotFound(f"no attestation {named[:64]!r}")
    found = AttestationIds(attestation_id=row[0], envelope_sha256=row[1], pae_sha256=row[2])
    for name, given, stored in (
        ("envelope_sha256", envelope_sha256, found.envelope_sha256),
        ("pae_sha256", pae_sha256, found.pae_sha256),
    ):
        if given is not None and given != stored:
            raise InvalidInput(
                f"target.{name} {given[:64]!r} is not that of attestation {found.attestation_id!r}"
            )
    return found
