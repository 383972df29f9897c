# SPDX-License-Identifier: Apache-2.0
"""A per-process cache of authenticated bearer tokens, so that a poll needs no query.

Keyed by the sha256 of the token (what the database stores), never by the
token itself. Only successes are kept, in a bounded LRU: random tokens sent by
an attacker each cost one database lookup, as without the cache, and never grow
it. Entries cannot outlive a revocation by more than :data:`CHECK_SECONDS`
(docs/revocation-feed.md, "Caches"):

* a revocation committed by this process clears the cache before the next
  lookup (:func:`attestor.store.tokens.local_revocations`);
* every :data:`CHECK_SECONDS` one aggregate query over the token table
  (:func:`attestor.store.tokens.fingerprint`) notices a revocation or a
  deletion made by any other process or replica, and clears the cache;
* an entry is reloaded from the database at least every :data:`MAX_AGE_SECONDS`
  whatever else happens (which also refreshes ``last_used_at``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from attestor.store import tokens

__all__ = ["CHECK_SECONDS", "MAX_AGE_SECONDS", "MAX_ENTRIES", "TokenCache"]

#: Longest a token revoked or deleted elsewhere keeps authenticating here.
CHECK_SECONDS: Final = 1.0
#: Longest an entry is trusted without reading its row again.
MAX_AGE_SECONDS: Final = 60.0
#: Entries kept (a few hundred bytes each).
MAX_ENTRIES: Final = 50_000


class TokenCache:
    """sha256(token) -> the token's row, for tokens that authenticated; thread-safe."""

    def __init__(
        self,
        *,
        check_seconds: float = CHECK_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check_seconds = check_seconds
        self._max_age = max_age_seconds
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._items: OrderedDict[str, tuple[float, tokens.TokenRow]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped on every clear: a lookup that began before a clear must not
        # store what it read, which may predate the revocation.
        self._generation = 0
        self._check_lock = threading.Lock()
        self._checked_at: float | None = None
        self._fingerprint: tokens.TokensFingerprint | None = None
        self._local_seen = tokens.local_revocations()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, digest: object) -> bool:
        with self._lock:
            return digest in self._items

    def authenticate(
        self, session_factory: sessionmaker[Session], digest: str, *, now: datetime
    ) -> tokens.TokenRow | None:
        """The active token whose :func:`~attestor.store.tokens.hash_token` is ``digest``.

        Raises:
            Unavailable: the database cannot be reached (from the store).
        """
        self._revalidate(session_factory)
        with self._lock:
            hit = self._items.get(digest)
            if hit is not None and self._monotonic() - hit[0] < self._max_age:
                self._items.move_to_end(digest)
                return hit[1]
            generation = self._generation
        loaded_at = self._monotonic()
        with session_factory.begin() as session:
            row = tokens.authenticate_hash(session, digest, now=now)
        if row is None:
            return None
        with self._lock:
            if generation == self._generation:
                self._items[digest] = (loaded_at, row)
                self._items.move_to_end(digest)
                while len(self._items) > self._max_entries:
                    self._items.popitem(last=False)
        return row

    def _clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._generation += 1

    def _revalidate(self, session_factory: sessionmaker[Session]) -> None:
        local = tokens.local_revocations()
        if local != self._local_seen:
            self._local_seen = local
            self._clear()
        checked_at = self._checked_at
        if checked_at is not None and self._monotonic() - checked_at < self._check_seconds:
            return
        # One thread reads the fingerprint; the others wait for it rather than
        # answer from entries that may be older than the bound.
        with self._check_lock:
            checked_at = self._checked_at
            started = self._monotonic()
            if checked_at is not None and started - checked_at < self._check_seconds:
                return
            with session_factory() as session:
                found = tokens.fingerprint(session)
            if found != self._fingerprint:
                self._clear()
                self._fingerprint = found
            self._checked_at = started
