# SPDX-License-Identifier: Apache-2.0
"""Per-item results of bulk verification jobs, keyed ``(job_id, item_index)``.

Writes are upserts on that key, so a chunk that runs twice (an rq retry after
a worker died mid-chunk) rewrites identical rows: no result is lost or
duplicated. Progress is counted from these rows, never kept as a counter that
two workers could both increment.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, any_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from attestor.errors import InvalidInput, NotFound
from attestor.store.models import (
    AttestationModel,
    ImageModel,
    JobModel,
    VerificationResultModel,
)

__all__ = [
    "RESULT_STATUSES",
    "OurAttestation",
    "ResultRow",
    "Tally",
    "VerificationResultModel",
    "find_attestations",
    "list_results",
    "lock_job",
    "record_results",
    "tally",
]

RESULT_STATUSES = ("verified", "rejected")


@dataclass(frozen=True, kw_only=True)
class ResultRow:
    """One item's outcome, as stored and served."""

    index: int
    status: str
    reason: str | None
    revoked: bool
    attestation_id: str | None

    def __post_init__(self) -> None:
        """Refuse statuses outside ``RESULT_STATUSES``.

        Raises:
            InvalidInput: Unknown status or a negative index.
        """
        if self.status not in RESULT_STATUSES:
            raise InvalidInput(f"result status must be verified or rejected, got {self.status!r}")
        if self.index < 0:
            raise InvalidInput(f"result index must be >= 0, got {self.index}")


@dataclass(frozen=True, kw_only=True)
class Tally:
    """Counts of stored results of one job."""

    done: int
    verified: int
    rejected: int


@dataclass(frozen=True, kw_only=True)
class OurAttestation:
    """What bulk verification needs to know about an attestation we issued."""

    id: str
    status: str
    keyid: str
    policy_id: str
    policy_version: str
    layer_digest: str
    image_digest: str
    issued_at: datetime
    #: Keyless only: whom the Fulcio certificate names.
    signer_identity: str | None = None
    signer_issuer: str | None = None


def record_results(session: Session, job_id: str, rows: Iterable[ResultRow]) -> None:
    """Insert or overwrite the results of ``job_id`` (idempotent per index)."""
    dialect = session.get_bind().dialect
    values = [(job_id, r.index, r.status, r.reason, r.revoked, r.attestation_id) for r in rows]
    if not values:
        return
    if dialect.name == "postgresql":
        # One statement with one array per column: psycopg adapts each array in
        # C, where an executemany adapted every parameter of every row (~8 us
        # per row, 3x the SQLite path).
        columns = list(zip(*values, strict=True))
        session.connection().execute(
            _PG_UPSERT,
            {
                "job_id": job_id,
                **{c: list(v) for c, v in zip(_RESULT_COLUMNS[1:], columns[1:], strict=True)},
            },
        )
        return
    upsert = _upsert_sql(dialect)
    # The statement is compiled once per dialect and run as the driver's
    # executemany: SQLAlchemy's own executemany builds and processes a parameter
    # dict per row, which cost ~2x the insert itself for a 500-row chunk.
    if upsert.positional:
        session.connection().exec_driver_sql(upsert.sql, values)
    else:
        named = [dict(zip(_RESULT_COLUMNS, v, strict=True)) for v in values]
        session.connection().exec_driver_sql(upsert.sql, named)


_RESULT_COLUMNS = ("job_id", "item_index", "status", "reason", "revoked", "attestation_id")
_PG_UPSERT = text(
    "INSERT INTO verification_results"
    " (job_id, item_index, status, reason, revoked, attestation_id)"
    " SELECT CAST(:job_id AS VARCHAR), * FROM unnest("
    "CAST(:item_index AS INTEGER[]), CAST(:status AS VARCHAR[]), CAST(:reason AS VARCHAR[]),"
    " CAST(:revoked AS BOOLEAN[]), CAST(:attestation_id AS VARCHAR[]))"
    " ON CONFLICT (job_id, item_index) DO UPDATE SET status = excluded.status,"
    " reason = excluded.reason, revoked = excluded.revoked,"
    " attestation_id = excluded.attestation_id"
)


@dataclass(frozen=True)
class _CompiledUpsert:
    sql: str
    positional: bool


@functools.lru_cache(maxsize=4)
def _upsert_sql(dialect: Dialect) -> _CompiledUpsert:
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    stmt = insert(VerificationResultModel).values({c: bindparam(c) for c in _RESULT_COLUMNS})
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "item_index"],
        set_={c: stmt.excluded[c] for c in ("status", "reason", "revoked", "attestation_id")},
    )
    compiled = stmt.compile(dialect=dialect)
    if compiled.positional and tuple(compiled.positiontup or ()) != _RESULT_COLUMNS:
        raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
    return _CompiledUpsert(str(compiled), bool(compiled.positional))


def lock_job(session: Session, job_id: str) -> JobModel:
    """Load a job row for update (PostgreSQL: ``FOR NO KEY UPDATE``; SQLite: the write lock).

    Callers write their result rows first, then lock, then count: concurrent
    chunks of one job then serialize on the job row and each count sees the
    others' committed rows. ``NO KEY UPDATE`` does not conflict with the
    ``KEY SHARE`` locks that other chunks' result inserts take through the
    foreign key, so two chunks cannot deadlock on the job row.

    Raises:
        NotFound: No job has this id.
    """
    model = session.scalar(
        select(JobModel).where(JobModel.id == job_id).with_for_update(key_share=True)
    )
    if model is None:
        raise NotFound(f"no job with id {job_id!r}")
    return model


def tally(session: Session, job_id: str) -> Tally:
    """Count the stored results of ``job_id`` by status."""
    query = (
        select(VerificationResultModel.status, func.count())
        .where(VerificationResultModel.job_id == job_id)
        .group_by(VerificationResultModel.status)
    )
    counts = {str(status): int(n) for status, n in session.connection().execute(query)}
    verified, rejected = counts.get("verified", 0), counts.get("rejected", 0)
    return Tally(done=verified + rejected, verified=verified, rejected=rejected)


def list_results(session: Session, job_id: str, *, offset: int, limit: int) -> list[ResultRow]:
    """Results of ``job_id`` for item indexes ``offset <= index < offset + limit``.

    Paging by index (not by row position) keeps pages stable while a job is
    still running: a missing index is simply not done yet.

    Raises:
        InvalidInput: Negative offset or non-positive limit.
    """
    if offset < 0 or limit <= 0:
        raise InvalidInput(f"offset must be >= 0 and limit > 0, got {offset} and {limit}")
    query = (
        select(VerificationResultModel)
        .where(
            VerificationResultModel.job_id == job_id,
            VerificationResultModel.item_index >= offset,
            VerificationResultModel.item_index < offset + limit,
        )
        .order_by(VerificationResultModel.item_index)
    )
    return [
        ResultRow(
            index=m.item_index,
            status=m.status,
            reason=m.reason,
            revoked=m.revoked,
            attestation_id=m.attestation_id,
        )
        for m in session.scalars(query)
    ]


def find_attestations(session: Session, pae_sha256s: Collection[str]) -> dict[str, OurAttestation]:
    """Our attestations by identity: the stored rows with one of these ``pae_sha256``.

    The key is :func:`attestor.dsse.pae_sha256`, not a hash of the envelope
    JSON, so a copy of our envelope with other keyids, extra or reordered
    signatures or another JSON layout is still found, with our row's status.
    When two rows hold the same signed statement, a ``revoked`` one wins (fail
    closed), then the oldest.
    """
    found: dict[str, OurAttestation] = {}
    wanted = sorted(set(pae_sha256s))
    a = AttestationModel
    # Only the columns needed, not the models: those would load each stored
    # envelope and statement too.
    columns = (
        a.pae_sha256, a.id, a.status, a.keyid, a.policy_id, a.policy_version,
        a.layer_digest, ImageModel.manifest_digest, a.created_at, a.signer_identity,
        a.signer_issuer,
    )  # fmt: skip
    if not wanted:
        return found
    # The list goes as one value: PostgreSQL takes an array (= ANY), adapted in
    # C; SQLite a JSON array it reads with json_each. An IN list would bind each
    # value on its own (~3 us per value with psycopg), and SQLAlchemy expands
    # and processes such a list in Python on every call.
    if session.get_bind().dialect.name == "postgresql":
        matches = a.pae_sha256 == any_(bindparam("shas", type_=postgresql.ARRAY(String)))
        shas: object = wanted
    else:
        listed = func.json_each(bindparam("shas", type_=String)).table_valued("value")
        matches = a.pae_sha256.in_(select(listed.c.value))
        shas = json.dumps(wanted)
    query = select(*columns).join(ImageModel, a.image_id == ImageModel.id).where(matches)
    # Latest assignment wins: revoked rows last, and among equals the oldest last.
    query = query.order_by(a.status == "revoked", a.created_at.desc(), a.id.desc())
    for row in session.connection().execute(query, {"shas": shas}):
        found[row.pae_sha256] = OurAttestation(
            id=row.id,
            status=row.status,
            keyid=row.keyid,
            policy_id=row.policy_id,
            policy_version=row.policy_version,
            layer_digest=row.layer_digest,
            image_digest=row.manifest_digest,
            issued_at=row.created_at,
            signer_identity=row.signer_identity,
            signer_issuer=row.signer_issuer,
        )
    return found
