# SPDX-License-Identifier: Apache-2.0
"""Revocation store on SQLite and PostgreSQL: migration, ordering under concurrency."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text

from attestor.revocation import Revocation, SubjectTarget
from attestor.store import revocations as store
from attestor.store.db import _alembic_config, current_revision, make_session_factory, upgrade
from attestor.store.models import RevocationModel

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _revocation(sequence: int) -> Revocation:
    return Revocation(
        id=str(uuid.uuid4()),
        sequence=sequence,
        target=SubjectTarget("sha256:" + f"{sequence:064x}"),
        reason="concurrency",
        actor="token:test",
        created_at=NOW,
    )


def test_migration_0004_down_and_up_gives_a_new_feed_id(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory() as session:
        before = store.feed_state(session)
    assert before.latest == 0
    assert before.feed_id.startswith("feed-")
    assert before.active_keyid is None
    command.downgrade(_alembic_config(db_engine), "0003")
    assert current_revision(db_engine) == "0003"
    assert "revocations" not in inspect(db_engine).get_table_names()
    upgrade(db_engine)
    with factory() as session:
        after = store.feed_state(session)
    # A re-created feed is another feed: agents start again from 0.
    assert after.feed_id != before.feed_id


def test_sequences_become_visible_in_order(db_engine: Engine) -> None:
    """Writers hold their sequence for a random time; a polling reader never skips one."""
    factory = make_session_factory(db_engine)
    writers, per_writer = 6, 5
    total = writers * per_writer
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - test timing jitter
        try:
            for _ in range(per_writer):
                with factory.begin() as session:
                    sequence = store.reserve_sequence(session)
                    time.sleep(rng.uniform(0, 0.02))  # commit order differs from start order
                    store.add_revocation(session, _revocation(sequence))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def read() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                with factory() as session:
                    latest = store.feed_state(session).latest
                    rows = store.revocations_after(session, since=cursor, latest=latest, limit=7)
                for r in rows:
                    seen.append(r.sequence)
                if rows:
                    cursor = rows[-1].sequence
                elif finished and cursor == latest:
                    return
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    done.set()
    reader.join(timeout=60)
    assert not errors, errors
    assert seen == list(range(1, total + 1))
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(RevocationModel)) == total
        revset = store.current_revocation_set(session)
    assert revset.version == total
    assert len(revset) == total


def test_rolled_back_insert_returns_its_sequence(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with pytest.raises(RuntimeError), factory.begin() as session:
        store.reserve_sequence(session)
        raise RuntimeError("admin request failed")
    with factory.begin() as session:
        sequence = store.reserve_sequence(session)
        store.add_revocation(session, _revocation(sequence))
    assert sequence == 1
    with factory() as session:
        assert store.get_revocation(session, store.list_revocations(session)[0][0].id).sequence == 1
        assert session.execute(text("SELECT last_sequence FROM revocation_feed")).scalar() == 1


def test_set_cache_follows_new_rows(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory() as session:
        empty = store.current_revocation_set(session)
    assert empty.version == 0
    for _ in range(3):
        with factory.begin() as session:
            store.add_revocation(session, _revocation(store.reserve_sequence(session)))
        with factory() as session:
            current = store.current_revocation_set(session)
    assert current.version == 3
    with factory() as session:
        assert store.current_revocation_set(session) is current
