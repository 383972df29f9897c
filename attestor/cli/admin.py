# SPDX-License-Identifier: Apache-2.0
"""``attestor admin``: operator tasks."""

from __future__ import annotations

import click

from attestor.cli._common import migrated_engine, settings_from_env
from attestor.store import revocations
from attestor.store.db import current_revision, make_session_factory

__all__ = ["group"]


@click.group("admin")
def group() -> None:
    """Operator tasks."""


@group.command("migrate")
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    engine = migrated_engine(settings_from_env())
    click.echo(f"database at revision {current_revision(engine)}")


@group.command("new-feed-id")
def new_feed_id() -> None:
    """Give the revocation feed a new id: run it after restoring a database backup.

    Agents pin the feed id; seeing a new one they read the feed again from the
    start instead of skipping revocations the restored database numbers again
    (docs/revocation-feed.md).
    """
    engine = migrated_engine(settings_from_env())
    try:
        with make_session_factory(engine).begin() as session:
            feed_id = revocations.rotate_feed_id(session)
    finally:
        engine.dispose()
    click.echo(f"revocation feed id is now {feed_id}")
