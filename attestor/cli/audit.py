# SPDX-License-Identifier: Apache-2.0
"""``attestor audit verify``: check the audit log's hash chain on the database itself.

An auditor's tool: it reads the database directly (never the API, whose
answers an attacker holding the server could shape) and writes nothing, not
even a migration.
"""

from __future__ import annotations

import getpass

import click
from sqlalchemy.exc import SQLAlchemyError

from attestor.cli._common import settings_from_env
from attestor.errors import Unavailable, VerificationError
from attestor.services import audit as audit_service
from attestor.store.db import make_engine, make_session_factory

__all__ = ["cli_actor", "group"]


def cli_actor() -> str:
    """``cli:<local user>``: who ran a changing command on the database, for the audit log."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"cli:{user}"[:256]


@click.group("audit")
def group() -> None:
    """The audit log of administrative changes."""


@group.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="SEQ:HASH",
    help="A head printed by an earlier run and kept outside the database; "
    "the chain must still contain it (repeatable).",
)
def verify(anchors: tuple[str, ...]) -> None:
    """Recompute every row's hash and link; exit 0 when intact, 1 naming the first broken row.

    Prints the head (SEQ:HASH) to keep elsewhere: passing it back with --anchor
    detects a chain rewritten since, which the chain alone cannot.
    """
    wanted = [audit_service.parse_anchor(a) for a in anchors]
    engine = make_engine(settings_from_env().database_url)
    try:
        with make_session_factory(engine)() as session:
            report = audit_service.verify_chain(session, anchors=wanted)
    except SQLAlchemyError as e:
        raise Unavailable(f"cannot read the audit log: {type(e).__name__}") from e
    finally:
        engine.dispose()
    if not report.ok:
        raise VerificationError(
            f"audit log broken at row {report.broken_seq}: {report.problem} "
            f"({report.rows} rows intact before it)"
        )
    click.echo(f"audit log intact: {report.rows} rows, head {report.head_seq}:{report.head_hash}")
