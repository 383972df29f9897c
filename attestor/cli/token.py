# SPDX-License-Identifier: Apache-2.0
"""``attestor token create|list|revoke``: manage bearer tokens on the server's database."""

from __future__ import annotations

import json

import click

from attestor.cli._common import migrated_engine, now, settings_from_env
from attestor.cli.audit import cli_actor
from attestor.services import tokens as token_service
from attestor.store import tokens as token_store
from attestor.store.db import make_session_factory

__all__ = ["group"]


@click.group("token")
def group() -> None:
    """Manage bearer tokens (uses ATTESTOR_DATA_DIR / DATABASE_URL like the server)."""


@group.command("create")
@click.option("--role", required=True, type=click.Choice(token_store.ROLES))
@click.option("--agent-id", default=None, help="Required for --role agent.")
@click.option("--name", default="", help="A label for humans.")
def create(role: str, agent_id: str | None, name: str) -> None:
    """Create a token; the token itself is the last line of stdout."""
    factory = make_session_factory(migrated_engine(settings_from_env()))
    with factory.begin() as session:
        plaintext, row = token_service.create_token(
            session, role=role, agent_id=agent_id, name=name, actor=cli_actor(), now=now()
        )
    click.echo(f"# token id {row.id}, role {row.role}; shown only once")
    click.echo(plaintext)


@group.command("list")
def list_() -> None:
    """List tokens (never their secrets) as JSON lines."""
    factory = make_session_factory(migrated_engine(settings_from_env()))
    with factory() as session:
        for row in token_store.list_tokens(session):
            click.echo(json.dumps({**row.__dict__}, default=str))


@group.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Revoke a token by id."""
    factory = make_session_factory(migrated_engine(settings_from_env()))
    with factory.begin() as session:
        token_service.revoke_token(session, token_id, actor=cli_actor(), now=now())
    click.echo(f"revoked {token_id}")
