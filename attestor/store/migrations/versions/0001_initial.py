# SPDX-License-Identifier: Apache-2.0
"""Initial schema: tokens, agents, signing keys, images, file manifests, attestations, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(255), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        _ts("registered_at"),
        _ts("last_heartbeat_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("keyid", sa.String(128), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("signer_uri", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("retired_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("keyid", name="pk_signing_keys"),
    )
    op.create_index(
        "uq_signing_keys_one_active",
        "signing_keys",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("registry", sa.String(255), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=True),
        sa.Column("manifest_digest", sa.String(80), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("requested_reference", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint(
            "registry",
            "repository",
            "manifest_digest",
            name="uq_images_registry_repository_manifest_digest",
        ),
    )
    op.create_table(
        "file_manifests",
        sa.Column("sha256", sa.String(80), nullable=False),
        sa.Column("tree_digest", sa.String(80), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("sha256", name="pk_file_manifests"),
    )
    op.create_table(
        "attestations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("layer_index", sa.Integer(), nullable=False),
        sa.Column("layer_digest", sa.String(80), nullable=False),
        sa.Column("layer_media_type", sa.String(255), nullable=False),
        sa.Column("diff_id", sa.String(80), nullable=False),
        sa.Column("chain_id", sa.String(80), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_sha256", sa.String(64), nullable=False),
        sa.Column("keyid", sa.String(128), nullable=False),
        sa.Column("policy_id", sa.String(255), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("manifest_sha256", sa.String(80), nullable=False),
        sa.Column("tree_digest", sa.String(80), nullable=False),
        sa.Column("invocation_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_attestations"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name="fk_attestations_image_id_images"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["attestations.id"], name="fk_attestations_parent_id_attestations"
        ),
        sa.ForeignKeyConstraint(
            ["keyid"], ["signing_keys.keyid"], name="fk_attestations_keyid_signing_keys"
        ),
        sa.ForeignKeyConstraint(
            ["manifest_sha256"],
            ["file_manifests.sha256"],
            name="fk_attestations_manifest_sha256_file_manifests",
        ),
        sa.UniqueConstraint(
            "image_id",
            "layer_index",
            "keyid",
            "policy_id",
            "policy_version",
            name="uq_attestations_image_layer_key_policy",
        ),
    )
    op.create_index("ix_attestations_layer_digest", "attestations", ["layer_digest"])
    op.create_index("ix_attestations_status", "attestations", ["status"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_attestations_status", table_name="attestations")
    op.drop_index("ix_attestations_layer_digest", table_name="attestations")
    op.drop_table("attestations")
    op.drop_table("file_manifests")
    op.drop_table("images")
    op.drop_index("uq_signing_keys_one_active", table_name="signing_keys")
    op.drop_table("signing_keys")
    op.drop_table("agents")
    op.drop_table("tokens")
