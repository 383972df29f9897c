# SPDX-License-Identifier: Apache-2.0
"""Jobs: the in-process owner and its heartbeat, and the schedule of periodic jobs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable additions only: existing rows (and every rq job) have no owner.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(80), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("schedule", sa.String(64), nullable=True))
    # The periodic submitter asks "the latest job of this schedule" once a period.
    op.create_index("ix_jobs_schedule_created_at", "jobs", ["schedule", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_schedule_created_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("schedule", "heartbeat_at", "owner"):
            batch.drop_column(column)
