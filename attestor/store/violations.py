# SPDX-License-Identifier: Apache-2.0
"""Runtime violations reported by agents: idempotent batch insert and filtered listing.

Idempotency: an agent picks a UUID per violation and keeps it across retries;
``(agent_id, violation_id)`` is unique in the database, and a batch is written
with ``INSERT ... ON CONFLICT DO NOTHING``. A replay after a crash, or two
replays racing each other, therefore store each violation once; rows that
already existed are counted as duplicates. A batch is one transaction: the
caller validates all of it first, so a batch is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestor.errors import InvalidInput
from attestor.store._cursor import check_limit, decode_cursor, split_page
from attestor.store._dialect import upsert_insert
from attestor.store.models import ViolationModel
from attestor.violation_kinds import MAX_DETAIL_BYTES, VIOLATION_KINDS

__all__ = [
    "MAX_BATCH",
    "MAX_DETAIL_BYTES",
    "MAX_PAGE",
    "BatchResult",
    "NewViolation",
    "ViolationFilter",
    "ViolationPage",
    "ViolationRow",
    "add_violations",
    "list_violations",
]

#: Largest batch one request may carry.
MAX_BATCH = 1000
#: Largest page of a listing.
MAX_PAGE = 1000
#: Kinds about the agent itself: no container and no image. Only these and
#: ``unverified`` may lack an image digest (the schema says so too).
_AGENT_KINDS = frozenset({"trust-anomaly"})


@dataclass(frozen=True, kw_only=True)
class NewViolation:
    """One violation as an agent sent it (already schema-checked)."""

    violation_id: str
    container_id: str | None
    image_digest: str | None
    layer_digest: str | None
    path: str | None
    kind: str
    detail: Mapping[str, Any] = field(hash=False)
    detected_at: datetime


@dataclass(frozen=True, kw_only=True)
class ViolationRow:
    """A stored violation."""

    violation_id: str
    agent_id: str
    container_id: str | None
    image_digest: str | None
    layer_digest: str | None
    path: str | None
    kind: str
    detail: Mapping[str, Any] = field(hash=False)
    detected_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class BatchResult:
    """How many violations of a batch were new, and how many were already stored."""

    accepted: int
    duplicates: int


@dataclass(frozen=True, kw_only=True)
class ViolationFilter:
    """Listing filters; ``None`` means "any"."""

    agent_id: str | None = None
    container_id: str | None = None
    image_digest: str | None = None
    layer_digest: str | None = None
    kind: str | None = None
    #: Only violations detected at or after this time.
    since: datetime | None = None


@dataclass(frozen=True)
class ViolationPage:
    """One page, newest first; ``next`` is the cursor of the following page, if any."""

    items: list[ViolationRow]
    next: str | None


def _row(m: ViolationModel) -> ViolationRow:
    return ViolationRow(
        violation_id=m.violation_id,
        agent_id=m.agent_id,
        container_id=m.container_id,
        image_digest=m.image_digest,
        layer_digest=m.layer_digest,
        path=m.path,
        kind=m.kind,
        detail=m.detail,
        detected_at=m.detected_at,
        received_at=m.received_at,
    )


def add_violations(
    session: Session,
    *,
    agent_id: str,
    violations: Sequence[NewViolation],
    now: datetime,
) -> BatchResult:
    """Store a batch once per ``(agent_id, violation_id)``.

    Args:
        agent_id: The caller's agent id, from its token.
        violations: At most :data:`MAX_BATCH`; an id repeated inside the batch
            is stored once and counted as a duplicate.
        now: ``received_at`` of the new rows.

    Raises:
        InvalidInput: The batch is empty or too large, a kind is unknown, or
            a violation other than ``unverified`` or ``trust-anomaly`` has
            no image digest, or one has no container but a ``trust-anomaly``;
            nothing is stored.
    """
    if not violations:
        raise InvalidInput("a batch needs at least one violation")
    if len(violations) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} violations per batch, got {len(violations)}")
    for v in violations:
        if v.kind not in VIOLATION_KINDS:
            raise InvalidInput(f"unknown violation kind {v.kind!r}")
        if not v.image_digest and v.kind != "unverified" and v.kind not in _AGENT_KINDS:
            raise InvalidInput(f"a {v.kind!r} violation needs an image digest")
        if (not v.container_id) != (v.kind in _AGENT_KINDS):
            raise InvalidInput(f"a {v.kind!r} violation has the wrong container_id")
    rows: dict[str, dict[str, Any]] = {}
    for v in violations:
        rows.setdefault(
            v.violation_id,
            {
                "agent_id": agent_id,
                "violation_id": v.violation_id,
                "container_id": v.container_id or None,
                "image_digest": v.image_digest or None,
                "layer_digest": v.layer_digest,
                "path": v.path,
                "kind": v.kind,
                "detail": dict(v.detail),
                "detected_at": v.detected_at,
                "received_at": now,
            },
        )
    stmt = (
        upsert_insert(session, ViolationModel)
        .on_conflict_do_nothing(index_elements=["agent_id", "violation_id"])
        .returning(ViolationModel.violation_id)
    )
    inserted = session.execute(stmt, list(rows.values())).scalars().all()
    accepted = len(inserted)
    return BatchResult(accepted=accepted, duplicates=len(violations) - accepted)


def list_violations(
    session: Session,
    filters: ViolationFilter,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> ViolationPage:
    """Violations matching ``filters``, newest received first.

    Raises:
        InvalidInput: ``limit`` out of range or a malformed cursor.
    """
    check_limit(limit, MAX_PAGE)
    query = select(ViolationModel).order_by(ViolationModel.seq.desc()).limit(limit + 1)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(ViolationModel.seq < after)
    for column, value in (
        (ViolationModel.agent_id, filters.agent_id),
        (ViolationModel.container_id, filters.container_id),
        (ViolationModel.image_digest, filters.image_digest),
        (ViolationModel.layer_digest, filters.layer_digest),
        (ViolationModel.kind, filters.kind),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(ViolationModel.detected_at >= filters.since)
    models, next_cursor = split_page(list(session.scalars(query)), limit, lambda m: (m.seq,))
    return ViolationPage(items=[_row(m) for m in models], next=next_cursor)
