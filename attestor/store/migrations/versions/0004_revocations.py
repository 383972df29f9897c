# SPDX-License-Identifier: Apache-2.0
"""Revocations (append-only), the feed row (feed id + sequence counter), lookup indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_INDEXES = (
    ("ix_attestations_keyid", "attestations", ["keyid"]),
    ("ix_attestations_policy_id_policy_version", "attestations", ["policy_id", "policy_version"]),
    ("ix_attestations_created_at", "attestations", ["created_at"]),
    ("ix_images_manifest_digest", "images", ["manifest_digest"]),
)


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revocations"),
        sa.UniqueConstraint("sequence", name="uq_revocations_sequence"),
    )
    op.create_index("ix_revocations_kind", "revocations", ["kind"])
    feed = op.create_table(
        "revocation_feed",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revocation_feed"),
    )
    # A new feed id per database: a re-created database is a new feed for agents,
    # which then start again from cursor 0 instead of skipping reused sequences.
    op.bulk_insert(feed, [{"id": 1, "feed_id": f"feed-{uuid.uuid4()}", "last_sequence": 0}])
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("revocation_feed")
    op.drop_index("ix_revocations_kind", table_name="revocations")
    op.drop_table("revocations")
