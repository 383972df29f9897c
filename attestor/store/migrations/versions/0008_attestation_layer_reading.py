# SPDX-License-Identifier: Apache-2.0
"""Record how each attested layer was read: ``attestations.layer_reading``.

Issuance reuses the diffID and file manifest of a layer it attested before.
Rows from before this revision were read by CPython's ``tarfile``, which
reads some headers otherwise than containerd does (a checksum field that
starts with NUL ends its archive, while containerd unpacks on), so their
scans are marked version 1 and never reused: such a layer is read again by
the current reader (``attestor.manifest.LAYER_READING_VERSION``) and refused
or attested as containerd unpacks it. The rows themselves, and what they
signed, are left as they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch rebuild): a rebuild of attestations trips the
    # foreign key parent_id holds on the table itself (see 0007).
    op.add_column(
        "attestations",
        sa.Column("layer_reading", sa.Integer(), nullable=False, server_default="1"),
    )


def downgrade() -> None:
    op.execute("ALTER TABLE attestations DROP COLUMN layer_reading")
