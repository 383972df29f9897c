# SPDX-License-Identifier: Apache-2.0
"""The agent's durable revocation-feed state: cursor, latest seen, feed id, ETag, set.

One JSON file, ``<state_dir>/revocation-feed.json``, holds everything together,
so the cursor never runs ahead of the revocations it stands for (spec:
docs/revocation-feed.md, "persist cursor and set together"). It is written to a
temporary file, fsync'd, renamed over the old one and the directory fsync'd:
a crash leaves the old state or the new one, never a mix.

On load every member is checked again (types, the revocation schema, cursor
invariants, a sha256 over the body). A file that fails is moved aside to
``revocation-feed.json.corrupt`` and the agent starts again from cursor 0: it
never trusts a state it cannot read, and the caller reports why.

Revocations from an earlier feed (the server's database was re-created or
restored under a new feed id) are kept as ``retained``, with the sequences the
verifier saw (all ``<= offset``); the current feed's sequences are shifted by
``offset`` in the set the verifier sees, so both fit in one
:class:`RevocationSet` whose version never goes down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from agent._fs import fsync_dir, seal, unseal, write_atomic
from attestor.errors import InvalidInput, Unavailable
from attestor.revocation import Revocation, RevocationSet
from attestor.revocation.model import format_time, parse_time
from attestor.revocation_feed import FeedPage

__all__ = ["STATE_FILE", "FeedState", "LoadedState", "load_state", "save_state"]

STATE_FILE: Final = "revocation-feed.json"
#: 2: attestation revocations name what was signed (``pae_sha256``). A format 1
#: file holds envelope hashes that cannot be turned into that, so it is set
#: aside and the feed read again from cursor 0 (the server re-expressed them).
_FORMAT: Final = 2
_OLD_FORMATS: Final = frozenset({1})
_MAX_STATE_BYTES: Final = 256 * 1024 * 1024
_MEMBERS: Final = frozenset(
    {"feed_id", "cursor", "latest", "etag", "issued_at", "offset", "retained", "revocations"}
)


def _ascending(revocations: tuple[Revocation, ...], low: int, high: int, what: str) -> None:
    previous = low
    for r in revocations:
        if not previous < r.sequence <= high:
            raise InvalidInput(
                f"{what}: sequence {r.sequence} out of order or outside ({low}, {high}]"
            )
        previous = r.sequence


@dataclass(frozen=True)
class FeedState:
    """What the agent knows of the feed; the constructor checks the invariants."""

    #: The pinned feed id; None before the first verified page.
    feed_id: str | None = None
    #: The agent's cursor: the ``next`` of the last applied page.
    cursor: int = 0
    #: The highest ``latest`` seen on this feed (rollback guard).
    latest: int = 0
    #: ETag of the last page, kept only when it did not move the cursor (an
    #: ETag names one ``since``, so it can only match at that cursor).
    etag: str | None = None
    #: ``issued_at`` of the newest verified page (staleness, across restarts).
    issued_at: datetime | None = None
    #: Added to this feed's sequences in :meth:`revset` (the old set's version).
    offset: int = 0
    #: Revocations of earlier feeds, with sequences ``<= offset``.
    retained: tuple[Revocation, ...] = ()
    #: Revocations of the current feed, with the server's sequences.
    revocations: tuple[Revocation, ...] = ()

    def __post_init__(self) -> None:
        """Raises: InvalidInput: if the members contradict each other."""
        for name in ("cursor", "latest", "offset"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidInput(f"{name}: must be an integer >= 0, got {value!r}")
        if self.cursor > self.latest:
            raise InvalidInput(f"cursor {self.cursor} is ahead of latest {self.latest}")
        if self.feed_id is None and (self.cursor or self.revocations):
            raise InvalidInput("a cursor or revocations without a feed id")
        if self.issued_at is not None and self.issued_at.tzinfo is None:
            raise InvalidInput("issued_at: must be a timezone-aware datetime")
        _ascending(self.revocations, 0, self.cursor, "revocations")
        _ascending(self.retained, 0, self.offset, "retained")

    def revset(self) -> RevocationSet:
        """The set the verifier uses: retained ones plus this feed's, shifted.

        A retained revocation that the current feed also carries (same id: a
        restored backup) is kept once, as the current feed has it.

        Raises:
            InvalidInput: if two revocations conflict (same id, different content).
        """
        ids = {r.id for r in self.revocations}
        kept = [r for r in self.retained if r.id not in ids]
        shifted = [replace(r, sequence=r.sequence + self.offset) for r in self.revocations]
        return RevocationSet([*kept, *shifted]) if self.offset else RevocationSet(shifted)

    def applied(self, page: FeedPage, etag: str | None) -> FeedState:
        """The state after a verified ``page`` that starts at this cursor.

        Raises:
            InvalidInput: if ``page`` does not continue this state.
        """
        if page.since != self.cursor or (self.feed_id not in (None, page.feed_id)):
            raise InvalidInput(
                f"page {page.feed_id!r}@{page.since} does not continue "
                f"{self.feed_id!r}@{self.cursor}"
            )
        newest = page.issued_at if self.issued_at is None else max(self.issued_at, page.issued_at)
        return replace(
            self,
            feed_id=page.feed_id,
            cursor=page.next,
            latest=max(self.latest, page.latest),
            etag=etag if page.next == page.since else None,
            issued_at=newest,
            revocations=self.revocations + page.revocations,
        )

    def reset_for(self, feed_id: str) -> FeedState:
        """Start ``feed_id`` from cursor 0, keeping every revocation known so far.

        Raises:
            InvalidInput: if the known revocations conflict.
        """
        # Known revocations keep the sequences the verifier saw, and the new
        # feed's start above them: the set's version never goes down, so a
        # cache keyed on it cannot mistake the new set for an older one.
        known = self.revset()
        return FeedState(
            feed_id=feed_id, issued_at=self.issued_at, offset=known.version, retained=tuple(known)
        )


@dataclass(frozen=True)
class LoadedState:
    """The state read at start, and why it was discarded, if it was."""

    state: FeedState
    problem: str | None = None


def _to_doc(state: FeedState) -> dict[str, Any]:
    return {
        "feed_id": state.feed_id,
        "cursor": state.cursor,
        "latest": state.latest,
        "etag": state.etag,
        "issued_at": None if state.issued_at is None else format_time(state.issued_at),
        "offset": state.offset,
        "retained": [r.to_dict() for r in state.retained],
        "revocations": [r.to_dict() for r in state.revocations],
    }


def _opt_str(doc: dict[str, Any], name: str) -> str | None:
    value = doc[name]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{name}: must be a string or null")
    return value


def _revocations(doc: dict[str, Any], name: str) -> tuple[Revocation, ...]:
    items = doc[name]
    if not isinstance(items, list):
        raise InvalidInput(f"{name}: must be a list")
    return tuple(Revocation.from_dict(item) for item in items)


def _from_bytes(data: bytes) -> FeedState:
    doc = unseal(
        data,
        "state",
        _FORMAT,
        what="state file",
        max_bytes=_MAX_STATE_BYTES,
        old_formats=_OLD_FORMATS,
    )
    if set(doc) != _MEMBERS:
        raise InvalidInput(f"state: expected exactly the members {sorted(_MEMBERS)}")
    issued_at = _opt_str(doc, "issued_at")
    state = FeedState(
        feed_id=_opt_str(doc, "feed_id"),
        cursor=doc["cursor"],
        latest=doc["latest"],
        etag=_opt_str(doc, "etag"),
        issued_at=None if issued_at is None else parse_time(issued_at, "issued_at"),
        offset=doc["offset"],
        retained=_revocations(doc, "retained"),
        revocations=_revocations(doc, "revocations"),
    )
    state.revset()  # two revocations that conflict make the file unusable too
    return state


def load_state(state_dir: Path) -> LoadedState:
    """Read and re-validate the state; a missing file is a fresh start.

    A file that cannot be trusted is moved aside (``.corrupt``) and a fresh
    state returned with ``problem`` saying why.

    Raises:
        Unavailable: if the directory cannot be read or the bad file moved aside.
    """
    path = state_dir / STATE_FILE
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return LoadedState(FeedState())
    except OSError as e:
        raise Unavailable(f"cannot read revocation state {path}: {e}") from e
    try:
        return LoadedState(_from_bytes(data))
    except InvalidInput as e:
        problem = f"revocation state {path} is corrupt ({e.message}): starting again from cursor 0"
    aside = path.with_name(STATE_FILE + ".corrupt")
    try:
        os.replace(path, aside)
        fsync_dir(state_dir)
    except OSError as e:
        raise Unavailable(f"cannot move corrupt revocation state aside: {e}") from e
    return LoadedState(FeedState(), problem=f"{problem}; the file is kept as {aside.name}")


def save_state(state_dir: Path, state: FeedState) -> None:
    """Write ``state`` atomically and durably (tmp file, fsync, rename, fsync dir).

    Raises:
        Unavailable: if the disk refuses (full, read-only, I/O error).
    """
    data = seal("state", _FORMAT, _to_doc(state))
    path = state_dir / STATE_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as e:
        raise Unavailable(f"cannot write revocation state {path}: {e}") from e
