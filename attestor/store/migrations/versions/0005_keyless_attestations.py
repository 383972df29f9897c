# SPDX-License-Identifier: Apache-2.0
"""Keyless attestations: the stored Sigstore bundle and the certificate's identity.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("bundle", "signer_identity", "signer_issuer")


def upgrade() -> None:
    # Nullable additions only: SQLite adds them in place, existing rows are key-signed.
    with op.batch_alter_table("attestations") as batch:
        batch.add_column(sa.Column("bundle", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("signer_identity", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signer_issuer", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attestations") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
