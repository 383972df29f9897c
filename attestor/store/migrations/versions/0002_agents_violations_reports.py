# SPDX-License-Identifier: Apache-2.0
"""Agent registration details and heartbeat counters, violations, container reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Batch mode: SQLite cannot add a NOT NULL column in place everywhere.
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("namespaces", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(_ts("last_registered_at", nullable=True))
        batch.add_column(sa.Column("containers", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("layers", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pending_violations", sa.Integer(), nullable=True))

    op.create_table(
        "violations",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agent_id", sa.String(255), nullable=False),
        sa.Column("violation_id", sa.String(36), nullable=False),
        sa.Column("container_id", sa.String(256), nullable=False),
        sa.Column("image_digest", sa.String(80), nullable=False),
        sa.Column("layer_digest", sa.String(80), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _ts("detected_at"),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("seq", name="pk_violations"),
        # The idempotency key of a violation is its id within one agent.
        sa.UniqueConstraint("agent_id", "violation_id", name="uq_violations_agent_id_violation_id"),
    )
    for column in ("container_id", "image_digest", "layer_digest", "kind", "detected_at"):
        op.create_index(f"ix_violations_{column}", "violations", [column])

    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("agent_id", sa.String(255), nullable=False),
        sa.Column("container_id", sa.String(256), nullable=False),
        sa.Column("image_name", sa.String(1024), nullable=False),
        sa.Column("image_digest", sa.String(80), nullable=False),
        sa.Column("finalized", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        _ts("generated_at"),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.UniqueConstraint(
            "agent_id",
            "container_id",
            "generated_at",
            name="uq_reports_agent_id_container_id_generated_at",
        ),
    )
    op.create_index(
        "uq_reports_one_latest",
        "reports",
        ["agent_id", "container_id"],
        unique=True,
        sqlite_where=sa.text("NOT finalized"),
        postgresql_where=sa.text("NOT finalized"),
    )
    op.create_index("ix_reports_received_at_id", "reports", ["received_at", "id"])
    op.create_index("ix_reports_container_id", "reports", ["container_id"])
    op.create_index("ix_reports_image_digest", "reports", ["image_digest"])


def downgrade() -> None:
    op.drop_index("ix_reports_image_digest", table_name="reports")
    op.drop_index("ix_reports_container_id", table_name="reports")
    op.drop_index("ix_reports_received_at_id", table_name="reports")
    op.drop_index("uq_reports_one_latest", table_name="reports")
    op.drop_table("reports")
    for column in ("detected_at", "kind", "layer_digest", "image_digest", "container_id"):
        op.drop_index(f"ix_violations_{column}", table_name="violations")
    op.drop_table("violations")
    with op.batch_alter_table("agents") as batch:
        for column in (
            "pending_violations",
            "layers",
            "containers",
            "last_registered_at",
            "namespaces",
        ):
            batch.drop_column(column)
