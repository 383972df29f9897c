# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from attestor.store import signing_keys
from attestor.store.db import (
    current_revision,
    make_engine,
    make_session_factory,
    upgrade,
)
from attestor.store.models import Base, SigningKeyModel
from tests.alembic_head import head_revision

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_migrations_match_models_and_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/a.db")
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    engine.dispose()


def test_datetimes_come_back_aware_utc(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/a.db")
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        row = signing_keys.add_active_key(
            s,
            keyid="k1",
            algorithm="ed25519",
            public_key_pem="PEM",
            signer_uri="file:///k",
            now=NOW,
        )
    with factory() as s:
        got = s.get(SigningKeyModel, "k1")
        assert got is not None
        assert got.created_at == NOW
        assert got.created_at.tzinfo is not None
    assert row.created_at == NOW
    with pytest.raises(IntegrityError), factory.begin() as s:
        # The partial unique index allows one active key only, even past our check.
        s.add(
            SigningKeyModel(
                keyid="k2",
                algorithm="ed25519",
                public_key_pem="P",
                signer_uri="u",
                status="active",
                created_at=NOW,
            )
        )
    engine.dispose()
