# SPDX-License-Identifier: Apache-2.0
"""Migration 0009 on SQLite and the harness PostgreSQL: the "" a 0008-era store
wrote for a null container id or image digest becomes NULL, only where the
schema allows a null, and a downgrade writes "" back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from attestor.store import violations
from attestor.store.db import (
    MIGRATIONS_DIR,
    current_revision,
    make_session_factory,
    upgrade,
)
from attestor.store.models import Base
from tests.alembic_head import head_revision

NOW = datetime(2026, 12, 8, tzinfo=UTC)
BEFORE = "0008"
IMAGE = "sha256:" + "a" * 64

# (violation_id, kind, container_id, image_digest) as the 0008-era store wrote them.
SEEDED = [
    ("v-unverified", "unverified", "ctr-1", ""),
    ("v-trust", "trust-anomaly", "", ""),
    ("v-file", "content", "ctr-2", IMAGE),
    # Never written by the store (it refused an empty image digest for this
    # kind); a hand edit. Not the schema's null, so it is left alone.
    ("v-hand", "unattested", "", ""),
]


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        table = sa.Table("violations", sa.MetaData(), autoload_with=conn)
        conn.execute(
            table.insert(),
            [
                {"agent_id": "n1", "violation_id": vid, "container_id": ctr,
                 "image_digest": image, "layer_digest": None, "path": None, "kind": kind,
                 "detail": {}, "detected_at": NOW, "received_at": NOW}
                for vid, kind, ctr, image in SEEDED
            ],
        )  # fmt: skip


def _stored(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT violation_id, container_id, image_digest FROM violations")
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def _downgrade(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    command.downgrade(config, BEFORE)


def test_upgrade_stores_null_and_downgrade_round_trips(empty_engine: Engine) -> None:
    upgrade(empty_engine, BEFORE)
    _seed(empty_engine)

    upgrade(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert _stored(empty_engine) == {
        "v-unverified": ("ctr-1", None),
        "v-trust": (None, None),
        "v-file": ("ctr-2", IMAGE),
        "v-hand": ("", ""),
    }
    # The listing shows what it showed before the migration for the store's rows.
    with make_session_factory(empty_engine)() as session:
        rows = violations.list_violations(session, violations.ViolationFilter()).items
    shown = {r.violation_id: (r.container_id, r.image_digest) for r in rows}
    assert {k: shown[k] for k in ("v-unverified", "v-trust", "v-file")} == {
        "v-unverified": ("ctr-1", None),
        "v-trust": (None, None),
        "v-file": ("ctr-2", IMAGE),
    }
    # A row stored after the upgrade keeps its NULL, and the downgrade writes
    # "" for it too, so the 0008-era store reads it as null again.
    with make_session_factory(empty_engine).begin() as session:
        violations.add_violations(
            session,
            agent_id="n1",
            violations=[
                violations.NewViolation(
                    violation_id="v-new", container_id=None, image_digest=None,
                    layer_digest=None, path=None, kind="trust-anomaly",
                    detail={"source": "key-set", "reason": "refused"}, detected_at=NOW,
                )
            ],
            now=NOW,
        )  # fmt: skip

    _downgrade(empty_engine)

    assert current_revision(empty_engine) == BEFORE
    assert _stored(empty_engine) == {
        **{vid: (ctr, image) for vid, _, ctr, image in SEEDED},
        "v-new": ("", ""),
    }
    # NOT NULL again: the 0008 schema holds.
    with empty_engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(text("UPDATE violations SET image_digest = NULL"))

    upgrade(empty_engine)
    assert _stored(empty_engine)["v-new"] == (None, None)
