# SPDX-License-Identifier: Apache-2.0
"""SQLAlchemy 2 typed ORM models. Only ``attestor.store`` touches these classes.

Store functions return frozen dataclasses, never these rows: core objects are
never ORM rows. The schema itself is created by the Alembic migrations in
``attestor/store/migrations``; ``Base.metadata`` must stay in step with them
(a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AgentModel",
    "AttestationModel",
    "AuditHeadModel",
    "AuditLogModel",
    "Base",
    "FileManifestModel",
    "ImageModel",
    "JobModel",
    "PolicyGenerationModel",
    "PolicyModel",
    "PolicyVersionModel",
    "ReportModel",
    "RevocationFeedModel",
    "RevocationModel",
    "SigningKeyModel",
    "TokenModel",
    "UTCDateTime",
    "VerificationResultModel",
    "ViolationModel",
]

TOKEN_ROLES = ("admin", "pipeline", "agent")
KEY_ALGORITHMS = ("ecdsa-p256", "ed25519")
#: Pseudo key rows standing for a keyless (Fulcio) identity; they hold no public key.
KEYLESS_ALGORITHM = "keyless"
ATTESTATION_STATUSES = ("valid", "revoked")
JOB_STATUSES = ("queued", "running", "finished", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Stable constraint names so that migrations (and SQLite batch mode) can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class TokenModel(Base):
    """A bearer token; only its sha256 is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AgentModel(Base):
    """A node agent that has registered with the server."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime | None]
    # Added by migration 0002.
    namespaces: Mapped[list[str]] = mapped_column(JSON, server_default=text("'[]'"))
    last_registered_at: Mapped[datetime | None]
    containers: Mapped[int | None] = mapped_column(Integer)
    layers: Mapped[int | None] = mapped_column(Integer)
    pending_violations: Mapped[int | None] = mapped_column(Integer)


class SigningKeyModel(Base):
    """A signing key known to the server; ``signer_uri`` is never serialized by the API."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key (a partial unique index on both databases).
        Index(
            "uq_signing_keys_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    keyid: Mapped[str] = mapped_column(String(128), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key_pem: Mapped[str] = mapped_column(Text)
    signer_uri: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(Text)


class ImageModel(Base):
    """An image manifest that attestations were issued for."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("registry", "repository", "manifest_digest"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The attribute cannot be called ``registry`` (reserved by Declarative).
    registry_host: Mapped[str] = mapped_column("registry", String(255))
    repository: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(128))
    manifest_digest: Mapped[str] = mapped_column(String(80))
    media_type: Mapped[str] = mapped_column(String(255))
    requested_reference: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class FileManifestModel(Base):
    """Canonical bytes of a layer file manifest, addressed by their sha256."""

    __tablename__ = "file_manifests"

    sha256: Mapped[str] = mapped_column(String(80), primary_key=True)
    tree_digest: Mapped[str] = mapped_column(String(80))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    entry_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class AttestationModel(Base):
    """One signed DSSE envelope for one layer of one image."""

    __tablename__ = "attestations"
    __table_args__ = (
        # Named by hand: the conventional name exceeds PostgreSQL's 63 characters.
        UniqueConstraint(
            "image_id",
            "layer_index",
            "keyid",
            "policy_id",
            "policy_version",
            name="uq_attestations_image_layer_key_policy",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    layer_index: Mapped[int] = mapped_column(Integer)
    layer_digest: Mapped[str] = mapped_column(String(80), index=True)
    layer_media_type: Mapped[str] = mapped_column(String(255))
    diff_id: Mapped[str] = mapped_column(String(80))
    chain_id: Mapped[str] = mapped_column(String(80))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("attestations.id"))
    # Exact JSON bytes as signed and served; never re-serialized.
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    # The address of the stored bytes (migration 0003). Not an identity: the
    # unsigned keyids and signature list change it.
    envelope_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The attestation's identity, sha256 of what its signatures sign
    # (attestor.dsse.pae_sha256): "is this envelope one of ours?" and
    # attestation revocations match on it (migration 0007). Not unique: the
    # same statement may be stored twice, and then both rows share its fate.
    pae_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # attestor.manifest.LAYER_READING_VERSION of the scan behind this row
    # (migration 0008; rows from before it were read by CPython's tarfile, 1).
    # Only scans of the current version are reused for a new issuance.
    layer_reading: Mapped[int] = mapped_column(Integer, server_default="1")
    keyid: Mapped[str] = mapped_column(ForeignKey("signing_keys.keyid"))
    policy_id: Mapped[str] = mapped_column(String(255))
    policy_version: Mapped[str] = mapped_column(String(64))
    manifest_sha256: Mapped[str] = mapped_column(ForeignKey("file_manifests.sha256"))
    tree_digest: Mapped[str] = mapped_column(String(80))
    invocation_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    # Keyless only (migration 0005): the stored Sigstore bundle (certificate and
    # Rekor entry cannot be rebuilt from the envelope) and who the certificate names.
    bundle: Mapped[bytes | None] = mapped_column(LargeBinary)
    signer_identity: Mapped[str | None] = mapped_column(Text)
    signer_issuer: Mapped[str | None] = mapped_column(Text)


class JobModel(Base):
    """A background job and its progress; the runner only carries its id."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_schedule_created_at", "schedule", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: The in-process runner holding the job (migration 0006); ``None`` for rq jobs.
    owner: Mapped[str | None] = mapped_column(String(80))
    #: Refreshed by ``owner`` while the job is queued or running in its process.
    heartbeat_at: Mapped[datetime | None]
    #: Name of the periodic schedule that submitted the job (``None``: on demand).
    schedule: Mapped[str | None] = mapped_column(String(64))


class VerificationResultModel(Base):
    """The outcome for one submitted item of a bulk verification job (migration 0003)."""

    __tablename__ = "verification_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    item_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    revoked: Mapped[bool] = mapped_column(Boolean)
    attestation_id: Mapped[str | None] = mapped_column(String(36))


class ViolationModel(Base):
    """A runtime violation reported by an agent; (agent_id, violation_id) is unique."""

    __tablename__ = "violations"
    __table_args__ = (UniqueConstraint("agent_id", "violation_id"),)

    # A server-side sequence: the stable order and the pagination cursor.
    # SQLite autoincrements only a column typed exactly INTEGER.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # From the caller's token, never from the body; no FK, a spool may deliver
    # before the agent row exists again (e.g. after a database restore).
    agent_id: Mapped[str] = mapped_column(String(255))
    violation_id: Mapped[str] = mapped_column(String(36))
    # Null only where schemas/violation.schema.json allows it: no container
    # for a trust-anomaly, no image digest for it or an unverified container.
    container_id: Mapped[str | None] = mapped_column(String(256), index=True)
    image_digest: Mapped[str | None] = mapped_column(String(80), index=True)
    layer_digest: Mapped[str | None] = mapped_column(String(80), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    detected_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime]


class ReportModel(Base):
    """A container provenance report: the latest per container, plus finalized ones."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("agent_id", "container_id", "generated_at"),
        # One "latest" (not finalized) row per container of an agent.
        Index(
            "uq_reports_one_latest",
            "agent_id",
            "container_id",
            unique=True,
            sqlite_where=text("NOT finalized"),
            postgresql_where=text("NOT finalized"),
        ),
        Index("ix_reports_received_at_id", "received_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(255))
    container_id: Mapped[str] = mapped_column(String(256), index=True)
    image_name: Mapped[str] = mapped_column(String(1024))
    image_digest: Mapped[str] = mapped_column(String(80), index=True)
    finalized: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    generated_at: Mapped[datetime]
    received_at: Mapped[datetime]


class RevocationModel(Base):
    """One revocation: append-only history; ``sequence`` is the agent feed's cursor."""

    __tablename__ = "revocations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Assigned under the feed row's lock, so sequences become visible in order.
    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]


class RevocationFeedModel(Base):
    """The one row of the feed: its id (new per database) and the last sequence given out."""

    __tablename__ = "revocation_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    feed_id: Mapped[str] = mapped_column(String(64))
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class PolicyModel(Base):
    """A centrally managed policy (migration 0010): its current version and soft delete."""

    __tablename__ = "policies"

    #: The document's own ``id``.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Set when deleted; the versions stay, and a later create revives the id.
    deleted_at: Mapped[datetime | None]


class PolicyVersionModel(Base):
    """One immutable version of a policy: the document bytes exactly as given."""

    __tablename__ = "policy_versions"

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[bytes] = mapped_column(LargeBinary)
    #: Hex sha256 of ``document``.
    sha256: Mapped[str] = mapped_column(String(64))
    #: The document's own ``version`` field, which attestations record.
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


class PolicyGenerationModel(Base):
    """One row counting policy changes; replicas poll it to know when to reload."""

    __tablename__ = "policy_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


class AuditLogModel(Base):
    """One hash-chained audit row (migration 0010); never updated or deleted."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    #: Canonical JSON text of the change, hashed as stored.
    change: Mapped[str] = mapped_column(Text)
    # Unique: two appenders that read the same head cannot both commit (no fork).
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHeadModel(Base):
    """The chain's head (one row); updating it first serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


# Revocation queries flip attestation statuses by these columns (migration 0004).
Index("ix_attestations_keyid", AttestationModel.keyid)
Index(
    "ix_attestations_policy_id_policy_version",
    AttestationModel.policy_id,
    AttestationModel.policy_version,
)
Index("ix_attestations_created_at", AttestationModel.created_at)
Index("ix_images_manifest_digest", ImageModel.manifest_digest)
