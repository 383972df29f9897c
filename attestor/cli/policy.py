# SPDX-License-Identifier: Apache-2.0
"""``attestor policy apply|list|diff|rollback``: manage policies on the server's database.

Like ``attestor token``, these run on the database directly (ATTESTOR_DATA_DIR /
DATABASE_URL, as the server), so they work before any admin token exists and
during an outage of the API. Every change writes its audit row, with the
actor ``cli:<local user>``, in the same transaction. Running servers pick the
change up within 5 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from attestor.cli._common import migrated_engine, now, settings_from_env
from attestor.cli.audit import cli_actor
from attestor.services import policies as policy_service
from attestor.services import policy_import
from attestor.store.db import make_session_factory

__all__ = ["group"]


@click.group("policy")
def group() -> None:
    """Manage policies (uses ATTESTOR_DATA_DIR / DATABASE_URL like the server)."""


@group.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def apply(path: Path) -> None:
    """Create or update the policies in PATH (a file, or the policy files of a directory).

    Like ``kubectl apply``: unchanged documents change nothing; policies not in
    PATH are left alone. All files are checked first; one invalid file stores nothing.
    """
    files = policy_import.read_policy_files(path)
    for name, data in files:
        policy_service.validate_document(data, source=name)
    engine = migrated_engine(settings_from_env())
    try:
        with make_session_factory(engine).begin() as session:
            applied = policy_import.import_files(session, files, actor=cli_actor(), now=now())
    finally:
        engine.dispose()
    for name, result in applied:
        click.echo(
            f"{result.policy.id}: {result.outcome}, version {result.policy.version} ({name})"
        )


@group.command("list")
@click.option("--include-deleted", is_flag=True, help="Also list deleted policies.")
def list_(include_deleted: bool) -> None:
    """List policies and their current versions as JSON lines (without documents)."""
    engine = migrated_engine(settings_from_env())
    try:
        with make_session_factory(engine)() as session:
            found = policy_service.list_policies(session, include_deleted=include_deleted)
    finally:
        engine.dispose()
    for view in found:
        row = {k: v for k, v in view.__dict__.items() if k != "document"}
        click.echo(json.dumps(row, default=str))


@group.command("diff")
@click.argument("policy_id")
@click.option("--from", "from_version", type=click.IntRange(min=1), default=None)
@click.option("--to", "to_version", type=click.IntRange(min=1), default=None)
def diff(policy_id: str, from_version: int | None, to_version: int | None) -> None:
    """Unified diff between two versions (default: the one before the current, and the current)."""
    engine = migrated_engine(settings_from_env())
    try:
        with make_session_factory(engine)() as session:
            text = policy_service.diff(
                session, policy_id, from_version=from_version, to_version=to_version
            )
    finally:
        engine.dispose()
    click.echo(text, nl=False)


@group.command("rollback")
@click.argument("policy_id")
@click.option("--to", "to_version", type=click.IntRange(min=1), required=True)
def rollback(policy_id: str, to_version: int) -> None:
    """Make a new version whose content is that of version --to."""
    engine = migrated_engine(settings_from_env())
    try:
        with make_session_factory(engine).begin() as session:
            result = policy_service.rollback(
                session, policy_id, to_version, actor=cli_actor(), now=now()
            )
    finally:
        engine.dispose()
    click.echo(
        f"{result.policy.id}: {result.outcome}, version {result.policy.version} "
        f"has the content of version {to_version}"
    )
