# SPDX-License-Identifier: Apache-2.0
"""The caches behind a feed poll: no query for a 304, bounded staleness, bounded size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, event, update
from sqlalchemy.engine import Engine

from attestor.api._state import app_state
from attestor.services.revocation import FEED_STATE_SECONDS, FeedStateCache
from attestor.services.token_cache import CHECK_SECONDS, TokenCache
from attestor.store import revocations as revocation_store
from attestor.store import tokens as token_store
from attestor.store.models import RevocationFeedModel, TokenModel
from tests.unit.api.conftest import NOW, bearer, create_token

FEED = "/v1/revocations/feed"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _revoke_subject(client: FlaskClient, admin: str, n: int) -> None:
    target = {"kind": "subject", "digest": f"sha256:{n:064x}"}
    answer = client.post(
        "/v1/revocations", json={"target": target, "reason": "t"}, headers=bearer(admin)
    )
    assert answer.status_code == 201


def test_a_304_poll_runs_no_query(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    agent = bearer(role_tokens["agent"])
    _revoke_subject(client, role_tokens["admin"], 1)
    first = client.get(f"{FEED}?since=1", headers=agent)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    with count_statements(app_state(app).engine) as statements:
        again = client.get(f"{FEED}?since=1", headers={**agent, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["ETag"] == etag
    # Token lookup and feed state both answered from memory.
    assert statements == []


def test_a_revocation_made_by_this_process_is_served_at_once(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    agent = bearer(role_tokens["agent"])
    first = client.get(f"{FEED}?since=0", headers=agent)
    etag = first.headers["ETag"]
    assert (
        client.get(f"{FEED}?since=0", headers={**agent, "If-None-Match": etag}).status_code == 304
    )
    _revoke_subject(client, role_tokens["admin"], 7)
    # Same test clock, same epoch: only the new sequence changes the ETag.
    fresh = client.get(f"{FEED}?since=0", headers={**agent, "If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag


def test_a_token_revoked_by_this_process_fails_at_once(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    plaintext, token_id = create_token(app, "agent", "node-9")
    assert client.get(FEED, headers=bearer(plaintext)).status_code == 200
    revoked = client.delete(f"/v1/tokens/{token_id}", headers=bearer(role_tokens["admin"]))
    assert revoked.status_code == 204
    assert client.get(FEED, headers=bearer(plaintext)).status_code == 401


def test_unknown_tokens_never_enter_the_cache(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    cache = app_state(app).token_cache
    assert client.get(FEED, headers=bearer(role_tokens["agent"])).status_code == 200
    assert len(cache) == 1
    for n in range(200):
        assert client.get(FEED, headers=bearer(f"att_guess{n}")).status_code == 401
    assert len(cache) == 1
    # Keyed by the stored hash, never by the secret.
    assert token_store.hash_token(role_tokens["agent"]) in cache
    assert role_tokens["agent"] not in cache


def test_token_cache_is_a_bounded_lru(app: Flask) -> None:
    factory = app_state(app).session_factory
    cache = TokenCache(max_entries=2)
    plain = [create_token(app, "agent", f"node-{n}")[0] for n in range(3)]
    digests = [token_store.hash_token(p) for p in plain]
    for digest in digests:
        assert cache.authenticate(factory, digest, now=NOW) is not None
    assert len(cache) == 2
    assert digests[0] not in cache
    assert digests[1] in cache and digests[2] in cache


@pytest.mark.parametrize("change", ["revoke", "delete"])
def test_token_revoked_or_deleted_elsewhere_fails_within_the_bound(app: Flask, change: str) -> None:
    # Another process's change reaches this one only through the database: a
    # statement outside the store stands in for it (no in-process signal).
    state = app_state(app)
    clock = FakeMonotonic()
    cache = TokenCache(monotonic=clock)
    plaintext, token_id = create_token(app, "agent", "node-2")
    digest = token_store.hash_token(plaintext)
    assert cache.authenticate(state.session_factory, digest, now=NOW) is not None
    row = TokenModel.id == token_id
    with state.session_factory.begin() as session:
        if change == "revoke":
            session.execute(update(TokenModel).where(row).values(revoked_at=NOW))
        else:
            session.execute(delete(TokenModel).where(row))
    clock.now += CHECK_SECONDS * 0.9
    # Inside the documented bound the cached answer may still stand...
    assert cache.authenticate(state.session_factory, digest, now=NOW) is not None
    clock.now += CHECK_SECONDS * 0.1
    # ...and at the bound it must not.
    assert cache.authenticate(state.session_factory, digest, now=NOW) is None


def test_token_entries_are_reread_after_their_max_age(app: Flask) -> None:
    state = app_state(app)
    clock = FakeMonotonic()
    cache = TokenCache(monotonic=clock, check_seconds=3600, max_age_seconds=60)
    plaintext, token_id = create_token(app, "agent", "node-4")
    digest = token_store.hash_token(plaintext)
    first = cache.authenticate(state.session_factory, digest, now=NOW)
    assert first is not None and first.last_used_at == NOW
    later = NOW + timedelta(minutes=2)
    clock.now += 59
    assert cache.authenticate(state.session_factory, digest, now=later) == first
    clock.now += 1
    # Re-read from its row, which refreshes last_used_at as before the cache.
    again = cache.authenticate(state.session_factory, digest, now=later)
    assert again is not None and again.last_used_at == later


def test_feed_state_changed_elsewhere_is_reread_within_the_bound(app: Flask) -> None:
    state = app_state(app)
    clock = FakeMonotonic()
    cache = FeedStateCache(monotonic=clock)
    with state.session_factory() as session:
        before = cache.load(session)
    assert cache.peek() == before
    with state.session_factory.begin() as session:
        session.execute(
            update(RevocationFeedModel).values(last_sequence=RevocationFeedModel.last_sequence + 1)
        )
    clock.now += FEED_STATE_SECONDS * 0.9
    assert cache.peek() == before
    clock.now += FEED_STATE_SECONDS * 0.1
    assert cache.peek() is None
    with state.session_factory() as session:
        assert cache.load(session).latest == before.latest + 1


def test_feed_state_cache_drops_on_a_local_commit(app: Flask) -> None:
    state = app_state(app)
    cache = FeedStateCache(monotonic=FakeMonotonic())
    with state.session_factory() as session:
        cache.load(session)
    with state.session_factory.begin() as session:
        revocation_store.rotate_feed_id(session)
    assert cache.peek() is None


def test_a_rolled_back_feed_change_keeps_the_cache(app: Flask) -> None:
    state = app_state(app)
    cache = FeedStateCache(monotonic=FakeMonotonic())
    with state.session_factory() as session:
        loaded = cache.load(session)
    with state.session_factory() as session:
        revocation_store.reserve_sequence(session)
        session.rollback()
    assert cache.peek() == loaded


def test_a_lookup_that_raced_a_revocation_is_not_cached(app: Flask) -> None:
    # A lookup reads the row, then (before it stores the row) another thread's
    # check sees a revocation and clears the cache: the row it read predates
    # the revocation, so it must not be stored.
    state = app_state(app)
    clock = FakeMonotonic()
    cache = TokenCache(monotonic=clock)
    victim, victim_id = create_token(app, "agent", "node-5")
    other, _ = create_token(app, "agent", "node-6")
    with state.session_factory.begin() as session:
        # Recently used: the lookup does not write last_used_at (no write lock).
        session.execute(update(TokenModel).values(last_used_at=NOW))
    digest = token_store.hash_token(victim)
    assert cache.authenticate(state.session_factory, token_store.hash_token(other), now=NOW)
    raced: list[bool] = []

    def race(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if raced or "token_hash" not in statement:
            return
        raced.append(True)
        with state.engine.begin() as conn:
            conn.execute(
                update(TokenModel).where(TokenModel.id == victim_id).values(revoked_at=NOW)
            )
        clock.now += CHECK_SECONDS
        assert cache.authenticate(state.session_factory, token_store.hash_token(other), now=NOW)

    event.listen(state.engine, "after_cursor_execute", race)
    try:
        assert cache.authenticate(state.session_factory, digest, now=NOW) is not None
    finally:
        event.remove(state.engine, "after_cursor_execute", race)
    assert raced == [True]
    assert digest not in cache
    assert cache.authenticate(state.session_factory, digest, now=NOW) is None
