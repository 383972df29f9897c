# SPDX-License-Identifier: Apache-2.0
"""``attestor admin``: operator tasks."""

from __future__ import annotations

import click

from attestor.cli._common import migrated_engine, settings_from_env
from attestor.store.db import current_revision

__all__ = ["group"]


@click.group("admin")
def group() -> None:
    """Operator tasks."""


@group.command("migrate")
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    engine = migrated_engine(settings_from_env())
    click.echo(f"database at revision {current_revision(engine)}")
