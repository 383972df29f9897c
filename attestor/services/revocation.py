# SPDX-License-Identifier: Apache-2.0
"""Revocation on the server: record, flip statuses, feed agents, trigger sweeps.

A revocation, the status of every attestation it covers and (for a key) the
key row all change in ONE transaction, so no read ever sees a revocation whose
attestations still say ``valid``. Re-verification jobs are enqueued after the
commit; if the queue is down the periodic sweep catches up (the statuses are
already right, the jobs only re-check with the verification core).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import Conflict, Error, InvalidInput, NotFound
from attestor.jobqueue import JobRunner, submit
from attestor.revocation import (
    AttestationTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    parse_target,
)
from attestor.revocation_feed import build_feed_page, feed_epoch, feed_etag, sign_feed_page
from attestor.services import audit
from attestor.signing.keys import load_signer, sslib_key
from attestor.store import revocations as store
from attestor.store import signing_keys as key_store

__all__ = [
    "FEED_DEFAULT_LIMIT",
    "FEED_REFRESH",
    "FEED_STATE_SECONDS",
    "REVERIFY_KIND",
    "CreatedRevocation",
    "FeedAnswer",
    "FeedCache",
    "FeedStateCache",
    "apply_revocations",
    "create_revocation",
    "enqueue_reverify",
    "feed_answer",
    "on_key_revoked",
    "reverify_payload",
]

log = logging.getLogger(__name__)

#: How often every agent gets a freshly signed page (the epoch of ``issued_at``).
FEED_REFRESH: Final = timedelta(minutes=5)
FEED_DEFAULT_LIMIT: Final = 1000
#: Longest a server process answers 304 from a feed state that another process
#: or replica has since changed (docs/revocation-feed.md, "Caches").
FEED_STATE_SECONDS: Final = 1.0
#: The job kind of re-verification sweeps (``attestor.jobs.reverify_task``).
REVERIFY_KIND: Final = "reverify"


@dataclass(frozen=True)
class CreatedRevocation:
    """A stored revocation and how many attestations it flipped to ``revoked``."""

    revocation: Revocation
    affected: int


_ATTESTATION_NAMES: Final = ("attestation_id", "envelope_sha256", "pae_sha256")


def _resolve_attestation(session: Session, doc: Mapping[str, Any]) -> dict[str, Any]:
    # The admin names the attestation by id, by the sha256 of its stored
    # envelope (what GET /v1/attestations shows) or by its pae_sha256; the
    # target always records the id and the pae_sha256 from our store. A hash of
    # the envelope JSON is never recorded: it covers unsigned keyids and
    # signatures, so a re-serialized copy of the envelope would not match it.
    unknown = set(doc) - {"kind", *_ATTESTATION_NAMES}
    if unknown:
        raise InvalidInput(f"target: unknown member(s) {sorted(map(str, unknown))[:5]}")
    names: dict[str, str] = {}
    for name in _ATTESTATION_NAMES:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > 128:
            raise InvalidInput(f"target.{name}: must be a non-empty string")
        names[name] = value
    found = store.resolve_attestation(session, **names)
    return {
        "kind": "attestation",
        "attestation_id": found.attestation_id,
        "pae_sha256": found.pae_sha256,
    }


def create_revocation(
    session: Session,
    *,
    target: Mapping[str, Any],
    reason: str,
    actor: str,
    now: datetime,
) -> CreatedRevocation:
    """Record a revocation and mark what it covers ``revoked``, in the caller's transaction.

    Args:
        target: the target object of ``POST /v1/revocations``; the
            ``attestation`` kind names the attestation by one or more of
            ``attestation_id``, ``envelope_sha256`` and ``pae_sha256``; the
            stored target always holds the id and ``pae_sha256``.
        reason: why (1..1000 characters).
        actor: who (the caller's token).
        now: the creation time.

    Raises:
        InvalidInput: a malformed target, reason or actor.
        NotFound: an attestation target names an unknown attestation.
    """
    # First statement of the transaction: takes the lock that orders sequences.
    sequence = store.reserve_sequence(session)
    doc = dict(target)
    if doc.get("kind") == "attestation":
        doc = _resolve_attestation(session, doc)
    revocation = Revocation(
        id=str(uuid.uuid4()),
        sequence=sequence,
        target=parse_target(doc),
        reason=reason,
        actor=actor,
        created_at=now,
    )
    store.add_revocation(session, revocation)
    affected = store.mark_revoked(session, revocation.target)
    if isinstance(revocation.target, KeyTarget):
        # The key row follows, so GET /v1/keys and issuance agree with the feed.
        try:
            key_store.set_status(
                session, revocation.target.keyid, "revoked", now=now, reason=reason
            )
        except NotFound:
            pass  # a key we never held (e.g. a pipeline's): the revocation alone is enough
    # Last, after the feed's lock (the order store/audit.py sets), in this transaction.
    audit.record(
        session,
        actor=actor,
        action="revocation.create",
        target=f"revocation:{revocation.id}",
        change={
            "sequence": sequence,
            "target": revocation.target.to_dict(),
            "reason": reason,
            "affected": affected,
        },
        now=now,
    )
    log.info(
        "revocation %s (sequence %d, %s) by %s: %d attestation(s) revoked",
        revocation.id,
        sequence,
        revocation.kind,
        actor,
        affected,
    )
    return CreatedRevocation(revocation=revocation, affected=affected)


def on_key_revoked(
    session: Session, keyid: str, *, reason: str, actor: str, now: datetime
) -> Revocation:
    """Record a key revocation for a key revoked through the keys API (idempotent).

    Call it in the same transaction as the key status change; without it agents
    never learn of the revocation.

    Raises:
        InvalidInput: a malformed keyid, reason or actor.
    """
    known = store.find_key_revocation(session, keyid)
    if known is not None:
        return known
    target = {"kind": "key", "keyid": keyid}
    return create_revocation(session, target=target, reason=reason, actor=actor, now=now).revocation


def apply_revocations(session: Session, *, image_id: str) -> int:
    """Mark the image's just-stored attestations that a revocation covers ``revoked``.

    Issuance calls it in its inserting transaction, right after storing the
    rows: an attestation issued for a revoked key, image, subject or policy
    version is never served as ``valid``. (One committed concurrently with a
    revocation is caught by the periodic sweep.) Returns how many it flipped.
    """
    revset = store.current_revocation_set(session)
    if not len(revset):
        return 0
    flipped = 0
    for item in store.attestation_metas(session, image_id=image_id, limit=10_000):
        meta = item.meta
        if revset.match(meta) is not None and meta.attestation_id and meta.pae_sha256:
            target = AttestationTarget(meta.attestation_id, meta.pae_sha256)  # type: ignore[arg-type]
            flipped += store.mark_revoked(session, target)
    return flipped


def reverify_payload(revocation: Revocation) -> dict[str, Any] | None:
    """The sweep job payload a revocation calls for, or None (statuses are already flipped)."""
    target = revocation.target
    if isinstance(target, KeyTarget):
        return {"scope": "key", "keyid": target.keyid, "revocation_id": revocation.id}
    if isinstance(target, PolicyVersionTarget):
        return {"scope": "policy", "policy_id": target.policy_id, "revocation_id": revocation.id}
    return None


def enqueue_reverify(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    revocation: Revocation,
    *,
    now: datetime,
    created_by: str | None = None,
) -> str | None:
    """Enqueue the re-verification sweep for a key or policy revocation; its job id.

    Never raises for a queue outage: the revocation is committed and effective,
    and the periodic sweep re-checks everything.
    """
    payload = reverify_payload(revocation)
    if payload is None:
        return None
    try:
        job = submit(
            session_factory,
            runner,
            kind=REVERIFY_KIND,
            payload=payload,
            now=now,
            created_by=created_by,
        )
    except Error as e:
        log.warning("re-verification after revocation %s not enqueued: %s", revocation.id, e)
        return None
    return job.id


class FeedCache:
    """Signed page bodies per ETag (ECDSA signatures differ each time), LRU, thread-safe."""

    def __init__(self, max_entries: int = 256) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        """The body stored for ``etag``, if any."""
        with self._lock:
            body = self._items.get(etag)
            if body is not None:
                self._items.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> bytes:
        """Keep ``body`` for ``etag``; returns the body to serve (the first one stored)."""
        with self._lock:
            known = self._items.setdefault(etag, body)
            self._items.move_to_end(etag)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
            return known


class FeedStateCache:
    """The feed state of one database, reused for at most ``max_age_seconds``; thread-safe.

    Only ever used to answer 304: anything else re-reads the state first. A
    feed change committed by this process drops it at once
    (:func:`attestor.store.revocations.local_feed_changes`).
    """

    def __init__(
        self,
        *,
        max_age_seconds: float = FEED_STATE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        # (loaded at, local feed changes when read, state); replaced whole.
        self._entry: tuple[float, int, store.FeedState] | None = None

    def peek(self) -> store.FeedState | None:
        """The cached state while it is fresh, else None."""
        entry = self._entry
        if entry is None:
            return None
        loaded_at, changes, state = entry
        if changes != store.local_feed_changes():
            return None
        if self._monotonic() - loaded_at >= self._max_age:
            return None
        return state

    def load(self, session: Session) -> store.FeedState:
        """Read the state from the database and keep it.

        Raises:
            ConfigError: the feed row is missing.
        """
        # Both taken before the read: a change committed during it makes the
        # entry count as stale, never the reverse.
        loaded_at, changes = self._monotonic(), store.local_feed_changes()
        state = store.feed_state(session)
        self._entry = (loaded_at, changes, state)
        return state


@dataclass(frozen=True)
class FeedAnswer:
    """What the feed endpoint sends: the ETag, and the body unless it is a 304."""

    etag: str
    #: The signed DSSE envelope JSON; None when the caller's ETag matched.
    body: bytes | None


def _etag(state: store.FeedState, keyid: str, *, since: int, limit: int, epoch: datetime) -> str:
    return _etag_of(state.feed_id, state.latest, keyid, since, limit, epoch)


# The same few (state, cursor, limit, epoch) come back on every poll; the JSON
# and the sha256 behind an ETag were a tenth of a 304. A pure function of its
# arguments, so memoising cannot serve a wrong ETag; bounded, since callers
# choose ``since`` and ``limit``.
@functools.lru_cache(maxsize=4096)
def _etag_of(feed_id: str, latest: int, keyid: str, since: int, limit: int, epoch: datetime) -> str:
    return feed_etag(
        server_id=feed_id, since=since, latest=latest, limit=limit, keyid=keyid, issued_at=epoch
    )


def feed_answer(
    session_factory: sessionmaker[Session],
    *,
    since: int,
    limit: int,
    now: datetime,
    cache: FeedCache,
    state_cache: FeedStateCache,
    etag_matches: Callable[[str], bool],
    refresh: timedelta = FEED_REFRESH,
) -> FeedAnswer:
    """Answer ``GET /v1/revocations/feed`` (docs/revocation-feed.md, "Server").

    A 304 for a state younger than ``state_cache``'s bound runs no query (and,
    for an ETag computed before, no sha256); otherwise one primary-key query.

    Args:
        session_factory: opened only when the cached state cannot answer.
        since: the agent's cursor.
        limit: most revocations in the page.
        now: the request time; pages are built at its refresh epoch.
        cache: signed bodies per ETag.
        state_cache: the feed state, reused only to answer 304.
        etag_matches: whether the request's If-None-Match names this ETag.
        refresh: the epoch length.

    Raises:
        Conflict: ``since`` is ahead of the latest sequence (409), or no key is active.
        InvalidInput: a bad ``since`` or ``limit``.
    """
    epoch = feed_epoch(now, refresh)
    cached = state_cache.peek()
    # A cached state only ever confirms the agent's ETag. A 409, a page or an
    # ETag for the agent to keep always come from a state read now, so a stale
    # cache can delay a revocation by at most its bound, and never sign or
    # refuse anything on old information.
    if cached is not None and since <= cached.latest and cached.active_keyid is not None:
        etag = _etag(cached, cached.active_keyid, since=since, limit=limit, epoch=epoch)
        if etag_matches(etag):
            return FeedAnswer(etag=etag, body=None)
    with session_factory() as session:
        state = state_cache.load(session)
        if since > state.latest:
            raise Conflict(
                f"cursor {since} is ahead of the feed's latest sequence {state.latest}",
                detail={"feed_id": state.feed_id, "latest": state.latest},
            )
        if state.active_keyid is None:
            raise Conflict(
                "no active signing key to sign the revocation feed; rotate a key in",
                detail={"reason": "no-active-key"},
            )
        etag = _etag(state, state.active_keyid, since=since, limit=limit, epoch=epoch)
        if etag_matches(etag):
            return FeedAnswer(etag=etag, body=None)
        body = cache.get(etag)
        if body is None:
            rows = store.revocations_after(session, since=since, latest=state.latest, limit=limit)
            payload = build_feed_page(
                rows,
                since=since,
                limit=limit,
                now=epoch,
                server_id=state.feed_id,
                latest=state.latest,
            )
            # Sign with the key named in the ETag, even if another became active since.
            key = key_store.get_key(session, state.active_keyid)
            signer = load_signer(key.signer_uri, public_key=sslib_key(key.public_key_pem))
            body = cache.put(etag, sign_feed_page(payload, signer, key.keyid).to_json())
    return FeedAnswer(etag=etag, body=body)
