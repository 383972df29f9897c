# SPDX-License-Identifier: Apache-2.0
"""Following the server's signed revocation feed (spec: docs/revocation-feed.md, "Agent").

Each :meth:`FeedFollower.poll` fetches pages from the agent's cursor until the
feed says ``complete``, verifies each one with the shared core
(:func:`attestor.revocation.verify_feed_page`), applies its revocations to the
in-memory set when the poll ends, then persists cursor and set together.

Nothing the network says is trusted unsigned: a 304, a 409 or an outage leave
the state as it is, and the one defence against an attacker who blocks the
feed or answers 304 forever is staleness: once the newest verified page is
older than ``max_age`` every poll reports an anomaly, and the caller applies
its fail mode.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from agent.revocation.state import FeedState, load_state, save_state
from agent.server import FeedResponse, ServerClient, fetch_revocation_feed
from attestor.errors import ConfigError, Conflict, Error, InvalidInput, VerificationError
from attestor.revocation import KeyTarget, RevocationSet
from attestor.revocation.model import format_time
from attestor.revocation_feed import FeedLimits, FeedPage, verify_feed_page
from attestor.verify import TrustedKey

__all__ = ["FeedFetcher", "FeedFollower", "PollResult"]

log = logging.getLogger("attestor.agent.revocation")

#: Signature of the transport: (since, limit, etag) -> the server's answer.
FeedFetcher = Callable[[int, int, "str | None"], FeedResponse]

_DEFAULT_LIMITS: Final = FeedLimits()


@dataclass(frozen=True)
class PollResult:
    """The outcome of one poll."""

    #: The revocation set changed (new revocations, or a feed reset).
    changed: bool
    #: The set to verify with from now on (always the newest applied).
    revset: RevocationSet
    #: Something to report and apply the fail mode to (stale feed, a page that
    #: failed verification, a feed reset, a discarded state file); else None.
    anomaly: str | None


class FeedFollower:
    """Keeps the agent's :class:`RevocationSet` in step with the server's feed.

    Thread-safe: polls are serialized, and :attr:`revset` may be read at any time.
    """

    def __init__(
        self,
        client: ServerClient,
        keys: Sequence[TrustedKey],
        state_dir: Path,
        *,
        max_age: timedelta,
        clock: Callable[[], datetime],
        limit: int = 1000,
        max_pages: int = 100,
        limits: FeedLimits = _DEFAULT_LIMITS,
        fetch: FeedFetcher | None = None,
    ) -> None:
        """Load the persisted state (a corrupt one is discarded and reported).

        Args:
            client: the agent's server client.
            keys: the server keys the agent pinned (``GET /v1/keys``).
            state_dir: where ``revocation-feed.json`` lives.
            max_age: a newest verified page older than this is an anomaly, and
                older pages are refused; choose at least refresh + poll interval.
            clock: the current time (timezone-aware).
            limit: revocations per page asked for.
            max_pages: most pages fetched in one poll (the rest waits for the next).
            limits: caps on a page.
            fetch: the transport; defaults to :func:`fetch_revocation_feed` on ``client``.

        Raises:
            ConfigError: on a bad argument.
            Unavailable: if the state directory cannot be read.
        """
        if max_age <= timedelta(0):
            raise ConfigError(f"max_age must be positive, got {max_age}")
        if not 1 <= limit <= limits.max_revocations or max_pages < 1:
            raise ConfigError(f"need 1 <= limit <= {limits.max_revocations}, max_pages >= 1")
        if fetch is None:

            def fetch(since: int, limit: int, etag: str | None) -> FeedResponse:
                return fetch_revocation_feed(client, since=since, limit=limit, etag=etag)

        self._fetch = fetch
        self._keys = tuple(keys)
        self._dir = state_dir
        self._max_age = max_age
        self._clock = clock
        self._limit = limit
        self._max_pages = max_pages
        self._limits = limits
        self._lock = threading.Lock()
        self._last_error: str | None = None
        loaded = load_state(state_dir)
        self._pending = loaded.problem
        if loaded.problem is not None:
            log.warning("%s", loaded.problem)
        self._state = loaded.state
        self._revset = loaded.state.revset()

    @property
    def revset(self) -> RevocationSet:
        """The current set (apply it to every verification from now on)."""
        return self._revset

    @property
    def state(self) -> FeedState:
        """The current feed state (cursor, pinned feed id, ...)."""
        return self._state

    def update_keys(self, keys: Sequence[TrustedKey]) -> None:
        """Replace the trusted server keys (after the agent re-fetched ``/v1/keys``)."""
        with self._lock:
            self._keys = tuple(keys)

    def poll(self) -> PollResult:
        """Fetch and apply every new page; report anomalies instead of raising.

        A transport failure (server down, 5xx) is logged and only becomes an
        anomaly once the feed is stale; a page that fails verification is an
        anomaly at once, and nothing of it is applied. The pages of one poll
        are applied to :attr:`revset` and persisted together when it ends.
        """
        with self._lock:
            now = self._clock()
            anomalies: list[str] = []
            if self._pending is not None:
                anomalies.append(self._pending)
                self._pending = None
            before, start = self._revset, self._state
            work = _Work(start, self._revset)
            try:
                self._sync(work, now, anomalies)
                self._last_error = None
            except Error as e:
                self._last_error = e.message
                log.warning("revocation feed poll failed: %s", e.message)
            if work.state is not start:
                self._commit(work, anomalies)
            stale = self._staleness(now)
            if stale is not None:
                anomalies.append(stale)
            for anomaly in anomalies:
                log.warning("revocation feed anomaly: %s", anomaly)
            after = self._revset
            return PollResult(
                changed=after.version != before.version or len(after) != len(before),
                revset=after,
                anomaly="; ".join(anomalies) or None,
            )

    # -- internals ----------------------------------------------------------

    def _staleness(self, now: datetime) -> str | None:
        newest = self._state.issued_at
        why = f" (last error: {self._last_error})" if self._last_error else ""
        if newest is None:
            return f"no verified revocation feed page yet{why}"
        if now - newest > self._max_age:
            return (
                f"revocation feed stale: newest verified page issued {format_time(newest)}, "
                f"{now - newest} ago, over max_age {self._max_age}{why}"
            )
        return None

    def _verify(self, body: bytes, work: _Work, now: datetime, *, probe: bool) -> FeedPage:
        # A probe looks for a new feed from cursor 0: nothing is pinned for it.
        return verify_feed_page(
            body,
            self._keys,
            expected_since=0 if probe else work.state.cursor,
            now=now,
            max_age=self._max_age,
            expected_feed_id=None if probe else work.state.feed_id,
            known_latest=0 if probe else work.state.latest,
            revocations=work.keys,
            limits=self._limits,
        )

    def _sync(self, work: _Work, now: datetime, anomalies: list[str]) -> None:
        reset_done = False
        for _ in range(self._max_pages):
            since = work.state.cursor
            try:
                resp = self._fetch(since, self._limit, work.state.etag)
            except Conflict as e:
                # Unsigned: the server may have lost history, or we follow
                # another feed. Only a signed page of a new feed id resets us.
                if not reset_done and self._try_reset(work, now, anomalies):
                    reset_done = True
                    continue
                anomalies.append(f"revocation feed refused cursor {since}: {e.message}")
                return
            if resp.body is None:
                return  # 304: nothing new at this cursor (staleness still applies)
            try:
                page = self._verify(resp.body, work, now, probe=False)
                work.apply(page, resp.etag)
            except (VerificationError, InvalidInput) as e:
                if not reset_done and self._try_reset(work, now, anomalies):
                    reset_done = True
                    continue
                anomalies.append(f"revocation feed page rejected: {e.message}")
                return
            if page.complete:
                return
        log.info("revocation feed: %d pages fetched, more next poll", self._max_pages)

    def _try_reset(self, work: _Work, now: datetime, anomalies: list[str]) -> bool:
        """If the server now signs a different feed id, restart it from cursor 0."""
        old = work.state
        if old.feed_id is None:
            return False
        try:
            resp = self._fetch(0, self._limit, None)
            if resp.body is None:
                return False
            page = self._verify(resp.body, work, now, probe=True)
            if page.feed_id == old.feed_id:
                return False
            work.reset(page, resp.etag)
        except Error as e:
            log.info("revocation feed: no new feed id at cursor 0 (%s)", e.message)
            return False
        anomalies.append(
            f"revocation feed id changed from {old.feed_id!r} to {page.feed_id!r} "
            f"(server database re-created or restored): restarted from cursor 0, "
            f"keeping {len(work.state.retained)} known revocations"
        )
        return True

    def _commit(self, work: _Work, anomalies: list[str]) -> None:
        # Apply first (fail closed: a revocation counts as soon as it verified),
        # then persist cursor and set together; a failed write is retried with
        # the next change, and a crash before it only costs a re-fetch.
        self._state, self._revset = work.state, work.state.revset()
        try:
            save_state(self._dir, work.state)
        except Error as e:
            anomalies.append(f"could not persist revocation feed state: {e.message}")


class _Work:
    """The state as one poll advances it, with what page checks need cheaply.

    The full :class:`RevocationSet` is built once per poll, at commit; pages
    in between are checked with the keys revoked outright (all that
    ``verify_feed_page`` consults) and the ids seen, which keeps a catch-up of
    many pages linear.
    """

    def __init__(self, state: FeedState, revset: RevocationSet) -> None:
        self.state = state
        self.keys = RevocationSet(r for r in revset if isinstance(r.target, KeyTarget))
        self._ids = {r.id for r in state.revocations}

    def apply(self, page: FeedPage, etag: str | None) -> None:
        """Raises: InvalidInput: if the page does not continue the state or reuses an id."""
        again = [r.id for r in page.revocations if r.id in self._ids]
        if again or len({r.id for r in page.revocations}) != len(page.revocations):
            raise InvalidInput(f"feed page reuses revocation ids {again[:3]}")
        new = self.state.applied(page, etag)
        keys = [
            replace(r, sequence=r.sequence + new.offset)
            for r in page.revocations
            if isinstance(r.target, KeyTarget)
        ]
        if keys:
            self.keys = self.keys.with_added(keys)
        self.state = new
        self._ids.update(r.id for r in page.revocations)

    def reset(self, page: FeedPage, etag: str | None) -> None:
        """Start the page's feed from 0, keeping what is known.

        Raises:
            InvalidInput: if the page does not start at 0 or its ids repeat.
        """
        fresh = _Work(self.state.reset_for(page.feed_id), RevocationSet())
        fresh.keys = self.keys
        fresh.apply(page, etag)
        self.state, self.keys, self._ids = fresh.state, fresh.keys, fresh._ids
