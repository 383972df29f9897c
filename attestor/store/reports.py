# SPDX-License-Identifier: Apache-2.0
"""Container provenance reports: the latest one per container, plus every finalized one.

An agent sends a report whenever a container's state changes and a last one,
``finalized``, when the container exits or is deleted. Keeping every change
would grow without bound, so the non-final report of an ``(agent_id,
container_id)`` is replaced in place (a partial unique index allows one), and
finalized reports are kept as history. Replays are harmless: the same
``generated_at`` for the same container is stored once, and an older report
never replaces a newer one (deliveries may arrive out of order).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from attestor.errors import NotFound
from attestor.store._cursor import check_limit, decode_time_cursor, split_page
from attestor.store._dialect import upsert_insert
from attestor.store.models import ReportModel

__all__ = [
    "MAX_PAGE",
    "NewReport",
    "Report",
    "ReportFilter",
    "ReportPage",
    "ReportSummary",
    "get_report",
    "list_reports",
    "save_report",
]

MAX_PAGE = 1000


@dataclass(frozen=True, kw_only=True)
class NewReport:
    """A report as an agent sent it (already schema-checked); ``body`` is kept as sent."""

    container_id: str
    image_name: str
    image_digest: str
    finalized: bool
    generated_at: datetime
    body: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, kw_only=True)
class ReportSummary:
    """A stored report without its body."""

    id: str
    agent_id: str
    container_id: str
    image_name: str
    image_digest: str
    finalized: bool
    generated_at: datetime
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class Report(ReportSummary):
    """A stored report with the document the agent sent."""

    body: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, kw_only=True)
class ReportFilter:
    """Listing filters; ``None`` means "any"."""

    agent_id: str | None = None
    container_id: str | None = None
    image_digest: str | None = None
    finalized: bool | None = None


@dataclass(frozen=True)
class ReportPage:
    """One page, most recently received first."""

    items: list[ReportSummary]
    next: str | None


def _summary(m: ReportModel) -> ReportSummary:
    return ReportSummary(
        id=m.id,
        agent_id=m.agent_id,
        container_id=m.container_id,
        image_name=m.image_name,
        image_digest=m.image_digest,
        finalized=m.finalized,
        generated_at=m.generated_at,
        received_at=m.received_at,
    )


def _report(m: ReportModel) -> Report:
    return Report(**_summary(m).__dict__, body=m.body)


def get_report(session: Session, report_id: str) -> Report:
    """One report with its body.

    Raises:
        NotFound: No report has this id.
    """
    model = session.get(ReportModel, report_id)
    if model is None:
        raise NotFound(f"no report with id {report_id[:64]!r}")
    return _report(model)


def _find(session: Session, agent_id: str, container_id: str, **where: Any) -> ReportModel | None:
    query = select(ReportModel).where(
        ReportModel.agent_id == agent_id, ReportModel.container_id == container_id
    )
    for name, value in where.items():
        query = query.where(getattr(ReportModel, name) == value)
    return session.scalars(query.order_by(ReportModel.generated_at.desc()).limit(1)).first()


def save_report(session: Session, *, agent_id: str, report: NewReport, now: datetime) -> Report:
    """Store a report: replace the container's latest, or add a finalized one.

    Args:
        agent_id: The caller's agent id, from its token.
        report: The report.
        now: ``received_at``.

    Returns:
        The row that now represents this report: the stored one, or the
        existing one when the report was a replay or older than what is stored.
    """
    same = _find(session, agent_id, report.container_id, generated_at=report.generated_at)
    if same is not None:
        return _report(same)
    final = _find(session, agent_id, report.container_id, finalized=True)
    if not report.finalized and final is not None and final.generated_at >= report.generated_at:
        # A late change report of a container that was already finalized.
        return _report(final)
    values = {
        "id": str(uuid.uuid4()),
        "agent_id": agent_id,
        "container_id": report.container_id,
        "image_name": report.image_name,
        "image_digest": report.image_digest,
        "finalized": report.finalized,
        "body": dict(report.body),
        "generated_at": report.generated_at,
        "received_at": now,
    }
    stmt = upsert_insert(session, ReportModel).values(**values)
    if report.finalized:
        # The finalized report supersedes the container's latest change report.
        session.execute(
            delete(ReportModel).where(
                ReportModel.agent_id == agent_id,
                ReportModel.container_id == report.container_id,
                ReportModel.finalized.is_(False),
            )
        )
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["agent_id", "container_id", "generated_at"]
        )
    else:
        # Atomic against a concurrent report for the same container; the WHERE
        # keeps a newer stored report when an older one arrives late.
        stmt = stmt.on_conflict_do_update(
            index_elements=["agent_id", "container_id"],
            index_where=text("NOT finalized"),
            set_={
                name: stmt.excluded[name]
                for name in ("image_name", "image_digest", "body", "generated_at", "received_at")
            },
            where=ReportModel.generated_at < stmt.excluded.generated_at,
        )
    session.execute(stmt)
    session.expire_all()
    if report.finalized:
        stored = _find(session, agent_id, report.container_id, generated_at=report.generated_at)
    else:
        stored = _find(session, agent_id, report.container_id, finalized=False)
    assert stored is not None  # noqa: S101 - inserted or kept just above
    return _report(stored)


def list_reports(
    session: Session,
    filters: ReportFilter,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> ReportPage:
    """Report summaries matching ``filters``, most recently received first.

    Raises:
        InvalidInput: ``limit`` out of range or a malformed cursor.
    """
    check_limit(limit, MAX_PAGE)
    query = (
        select(ReportModel)
        .order_by(ReportModel.received_at.desc(), ReportModel.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        after, report_id = decode_time_cursor(cursor)
        query = query.where(
            (ReportModel.received_at < after)
            | ((ReportModel.received_at == after) & (ReportModel.id < report_id))
        )
    for column, value in (
        (ReportModel.agent_id, filters.agent_id),
        (ReportModel.container_id, filters.container_id),
        (ReportModel.image_digest, filters.image_digest),
        (ReportModel.finalized, filters.finalized),
    ):
        if value is not None:
            query = query.where(column == value)
    models, next_cursor = split_page(
        list(session.scalars(query)), limit, lambda m: (m.received_at.isoformat(), m.id)
    )
    return ReportPage(items=[_summary(m) for m in models], next=next_cursor)
