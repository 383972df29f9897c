# SPDX-License-Identifier: Apache-2.0
"""Attestations are identified by what is signed: ``attestations.pae_sha256``.

Adds the sha256 of each stored envelope's DSSE PAE (``attestor.dsse.pae_sha256``,
computed from the stored bytes), indexed, and rewrites every stored
``attestation`` revocation target from the old ``envelope_sha256`` member to
``pae_sha256``. A hash of the envelope JSON covers the unsigned keyids and
signature list, so a re-serialized copy of a revoked envelope did not match.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from attestor.dsse import EnvelopeLimits, parse_envelope

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_INDEX = "ix_attestations_pae_sha256"
_BATCH = 500
# Our own stored envelopes, read once: room beyond the caps for untrusted input,
# so an envelope stored under older caps still migrates.
_LIMITS = EnvelopeLimits(
    max_document_bytes=256 * 1024 * 1024,
    max_payload_bytes=256 * 1024 * 1024,
    max_signatures=4096,
)

_attestations = sa.table(
    "attestations",
    sa.column("id", sa.String),
    sa.column("envelope", sa.LargeBinary),
    sa.column("envelope_sha256", sa.String),
    sa.column("pae_sha256", sa.String),
)
_revocations = sa.table(
    "revocations",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("target", sa.JSON),
)


def _pages(connection: sa.Connection) -> Iterator[Sequence[sa.Row[Any, Any]]]:
    # Keyset pages by id: the envelopes of a large table never sit in memory at once.
    after = ""
    while True:
        rows = connection.execute(
            sa.select(_attestations.c.id, _attestations.c.envelope)
            .where(_attestations.c.id > after)
            .order_by(_attestations.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _backfill(connection: sa.Connection) -> None:
    update = (
        sa.update(_attestations)
        .where(_attestations.c.id == sa.bindparam("row_id"))
        .values(pae_sha256=sa.bindparam("digest"))
    )
    for rows in _pages(connection):
        # A stored envelope that does not parse stops the migration: a row
        # without an identity could never be matched by a revocation.
        values = [
            {
                "row_id": r.id,
                "digest": parse_envelope(bytes(r.envelope), limits=_LIMITS).pae_sha256(),
            }
            for r in rows
        ]
        connection.execute(update, values)


def _rewrite_targets(connection: sa.Connection, *, old: str, new: str) -> None:
    """Replace member ``old`` of every attestation target by the row's column ``new``."""
    a = _attestations.c
    rows = connection.execute(
        sa.select(_revocations.c.id, _revocations.c.target).where(
            _revocations.c.kind == "attestation"
        )
    ).all()
    for row in rows:
        target = dict(row.target)
        named = target.get("attestation_id")
        # By id first; by the old digest only if that row is gone.
        found = connection.execute(
            sa.select(a[new])
            .where(sa.or_(a.id == named, a[old] == target.get(old)))
            .order_by(a.id != named, a.id)
            .limit(1)
        ).scalar()
        if found is None:
            # Never drop a revocation silently: an operator must look at it.
            raise RuntimeError(
                f"revocation {row.id}: attestation {named!r} is not stored, so its "
                f"{new} cannot be computed"
            )
        target.pop(old, None)
        target[new] = found
        connection.execute(
            sa.update(_revocations).where(_revocations.c.id == row.id).values(target=target)
        )


def upgrade() -> None:
    connection = op.get_bind()
    # NOT NULL from the start, with an empty default that every row is then
    # backfilled over: SQLite cannot make a column NOT NULL later without
    # rebuilding the table, and a rebuild trips the foreign key parent_id holds
    # on the table itself. An empty value matches no revocation and no look-up.
    op.add_column(
        "attestations", sa.Column("pae_sha256", sa.String(64), nullable=False, server_default="")
    )
    _backfill(connection)
    _rewrite_targets(connection, old="envelope_sha256", new="pae_sha256")
    if connection.dialect.name != "sqlite":
        # New rows always carry it (attestor.store.attestations); no default.
        op.alter_column("attestations", "pae_sha256", server_default=None)
    op.create_index(_INDEX, "attestations", ["pae_sha256"], unique=False)


def downgrade() -> None:
    _rewrite_targets(op.get_bind(), old="pae_sha256", new="envelope_sha256")
    op.drop_index(_INDEX, table_name="attestations")
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35) rather than a batch rebuild,
    # for the same foreign-key reason as above.
    op.execute("ALTER TABLE attestations DROP COLUMN pae_sha256")
