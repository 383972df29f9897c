# SPDX-License-Identifier: Apache-2.0
"""Per-item results of bulk verification jobs; index on attestations.envelope_sha256.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "verification_results",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("attestation_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_verification_results_job_id_jobs"
        ),
        sa.PrimaryKeyConstraint("job_id", "item_index", name="pk_verification_results"),
    )
    # Bulk verification looks up "is this envelope one of ours?" by its sha256.
    op.create_index(
        "ix_attestations_envelope_sha256", "attestations", ["envelope_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_attestations_envelope_sha256", table_name="attestations")
    op.drop_table("verification_results")
