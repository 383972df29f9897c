# SPDX-License-Identifier: Apache-2.0
"""Record administrative changes in the audit log, read it by pages, verify its chain.

:func:`record` runs in the caller's transaction, so a change and its audit
row commit or roll back together. :func:`verify_entries` recomputes every
hash and link; it proves the rows were not edited, removed or reordered
since they were written, relative to the head it ends at (see
docs/api.md, "Audit log", for what it cannot prove).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attestor.errors import InvalidInput
from attestor.store import audit as store

__all__ = [
    "ACTIONS",
    "MAX_PAGE",
    "AuditPage",
    "ChainReport",
    "record",
    "page",
    "parse_anchor",
    "verify_chain",
    "verify_entries",
]

#: Every action the log records; anything else is a programming error.
ACTIONS = frozenset(
    {
        "policy.create",
        "policy.update",
        "policy.delete",
        "policy.rollback",
        "key.create",
        "key.rotate",
        "key.revoke",
        "token.create",
        "token.revoke",
        "revocation.create",
    }
)
MAX_PAGE = store.MAX_PAGE


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    change: Mapping[str, Any],
    now: datetime,
) -> store.AuditEntry:
    """Append one row in the caller's transaction.

    Raises:
        ValueError: ``action`` is not one of :data:`ACTIONS` (our bug, not the caller's).
        InvalidInput: a field is empty or too long.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return store.append(session, now=now, actor=actor, action=action, target=target, change=change)


@dataclass(frozen=True)
class AuditPage:
    """One page of the log, and the chain's head when it was read."""

    entries: list[store.AuditEntry]
    next_cursor: str | None
    head_seq: int
    head_hash: str


def page(
    session: Session, *, cursor: str | None, limit: int, action_prefix: str | None = None
) -> AuditPage:
    """Rows in sequence order after ``cursor``.

    Raises:
        InvalidInput: a malformed cursor or a limit out of range.
    """
    head_seq, head_hash = store.head(session)
    rows, next_cursor = store.list_page(
        session, cursor=cursor, limit=limit, action_prefix=action_prefix
    )
    return AuditPage(rows, next_cursor, head_seq, head_hash)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain.

    Attributes:
        ok: every row links and hashes, and the chain ends at the stored head.
        rows: rows checked before the first break (all of them when ``ok``).
        head_seq: sequence of the last intact row (0 for an empty log).
        head_hash: its hash; record it elsewhere to anchor the chain.
        broken_seq: the first row that fails (``None`` when ``ok``).
        problem: why, for a person.
    """

    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str = ""


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``attestor audit verify``.

    Raises:
        InvalidInput: not of that form.
    """
    seq, sep, digest = text.partition(":")
    if (
        not sep
        or not seq.isdigit()
        or len(seq) > 18
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise InvalidInput(f"anchor must be SEQ:HASH (64 lowercase hex), got {text[:100]!r}")
    return int(seq), digest


def verify_entries(
    entries: Iterable[store.AuditEntry],
    *,
    head: tuple[int, str],
    anchors: Iterable[tuple[int, str]] = (),
) -> ChainReport:
    """Walk rows in sequence order; report the first that does not hold.

    A row holds when its seq is the previous one plus 1 (a gap is a removed
    row), its ``prev_hash`` is the previous row's hash, and its hash
    recomputes. The last row must be the stored ``head`` (a removed tail),
    and each anchor ``(seq, hash)`` recorded earlier must still be in the
    chain (a rewritten chain).
    """
    want = dict(anchors)
    expected_seq, prev_hash, rows = 1, store.GENESIS_HASH, 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, rows, expected_seq - 1, prev_hash, seq, problem)

    for entry in entries:
        if entry.seq > expected_seq:
            return broken(expected_seq, f"row {expected_seq} is missing (next is row {entry.seq})")
        if entry.seq != expected_seq:
            return broken(entry.seq, f"row {entry.seq} is out of place, not {expected_seq}")
        if entry.prev_hash != prev_hash:
            return broken(entry.seq, "prev_hash does not match the previous row's hash")
        recomputed = store.entry_hash(
            seq=entry.seq,
            created_at=entry.created_at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            change=entry.change,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            return broken(entry.seq, "hash does not match the row's content (row edited)")
        if entry.seq in want and want.pop(entry.seq) != entry.hash:
            return broken(entry.seq, "hash differs from the anchor recorded for this row")
        prev_hash, expected_seq, rows = entry.hash, expected_seq + 1, rows + 1
    last = expected_seq - 1
    if (last, prev_hash) != head:
        return broken(
            last + 1,
            f"the chain ends at row {last} but the head says row {head[0]} (rows removed?)",
        )
    if want:
        missing = min(want)
        return broken(missing, f"anchored row {missing} is not in the chain")
    return ChainReport(True, rows, last, prev_hash)


def verify_chain(session: Session, *, anchors: Iterable[tuple[int, str]] = ()) -> ChainReport:
    """Verify the whole stored chain (read in batches) against the stored head."""
    return verify_entries(store.iter_entries(session), head=store.head(session), anchors=anchors)
