# SPDX-License-Identifier: Apache-2.0
"""Violations store a missing container or image as NULL, not as "".

``violations.container_id`` and ``violations.image_digest`` were NOT NULL, so
the store wrote "" for the null of an ``unverified`` violation whose image
cannot be resolved (no image digest) and of a ``trust-anomaly`` (about the
agent: neither), and read "" back as null. The columns become nullable and
exactly those "" become NULL: "" in ``image_digest`` of those two kinds and
in ``container_id`` of a ``trust-anomaly``, the only places the schema allows
a null and the only places the store ever wrote "". Any other "" (the store
refused it, so only a hand edit made one) is left as it is rather than turned
into a null the schema forbids for its kind.

The downgrade writes "" for every NULL before making the columns NOT NULL
again, which is what the older store reads as null.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_violations = sa.table(
    "violations",
    sa.column("kind", sa.String),
    sa.column("container_id", sa.String),
    sa.column("image_digest", sa.String),
)
#: column -> the kinds whose "" in it meant null (schemas/violation.schema.json).
_NULLABLE_FOR = {
    "container_id": ("trust-anomaly",),
    "image_digest": ("unverified", "trust-anomaly"),
}
_TYPES = {"container_id": sa.String(256), "image_digest": sa.String(80)}


def _set_nullable(nullable: bool) -> None:
    # Batch mode rebuilds the table on SQLite, which cannot drop NOT NULL in
    # place; safe here, unlike for attestations (see 0007): no foreign key
    # points into or out of violations. PostgreSQL gets a plain ALTER COLUMN.
    with op.batch_alter_table("violations") as batch:
        for column, type_ in _TYPES.items():
            batch.alter_column(column, existing_type=type_, nullable=nullable)


def upgrade() -> None:
    _set_nullable(True)
    for column, kinds in _NULLABLE_FOR.items():
        col = _violations.c[column]
        op.execute(
            sa.update(_violations)
            .where(col == "", _violations.c.kind.in_(kinds))
            .values({column: None})
        )


def downgrade() -> None:
    for column in _TYPES:
        col = _violations.c[column]
        op.execute(sa.update(_violations).where(col.is_(None)).values({column: ""}))
    _set_nullable(False)
