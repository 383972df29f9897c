# SPDX-License-Identifier: Apache-2.0
"""The hash-chained audit log: append (serialised), read in order, hash a row.

Each row's ``hash`` is the sha256 of a canonical encoding of (seq, time,
actor, action, target, change, prev_hash), and ``prev_hash`` is the hash of
the row before (64 zeros for the first). Appending first bumps the one-row
``audit_head``: that ``UPDATE`` holds the row lock (PostgreSQL) or the write
lock (SQLite) until commit, so a second appender waits and then reads the
head the first one wrote; the chain cannot fork. The unique ``prev_hash``
refuses a fork even if that lock were ever bypassed.

Lock order: a transaction that also reserves a revocation sequence takes the
feed's lock first and appends last; policy changes take this lock first and
no feed lock. Taking the two in the other order would let two writers
deadlock on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attestor.errors import ConfigError, Conflict, InvalidInput
from attestor.store._cursor import check_limit, decode_cursor, encode_cursor
from attestor.store.models import AuditHeadModel, AuditLogModel

__all__ = [
    "GENESIS_HASH",
    "MAX_CHANGE_CHARS",
    "MAX_PAGE",
    "AuditEntry",
    "append",
    "canonical_change",
    "check_field",
    "entries_after",
    "entry_hash",
    "head",
    "iter_entries",
    "list_page",
    "lock_chain",
    "time_text",
]

GENESIS_HASH = "0" * 64
#: A change records ids, versions and digests, never documents.
MAX_CHANGE_CHARS = 64 * 1024
MAX_PAGE = 500
_HEAD_ROW = 1
_LIMITS = {"actor": 256, "action": 64, "target": 512}


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log, as stored."""

    seq: int
    created_at: datetime
    actor: str
    action: str
    target: str
    #: Canonical JSON text (:func:`canonical_change`), hashed as stored.
    change: str
    prev_hash: str
    hash: str


def canonical_change(change: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 kept, no NaN: one text per value.

    Raises:
        InvalidInput: ``change`` holds a value JSON cannot carry, or is too large.
    """
    try:
        text = json.dumps(
            change, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"audit change is not JSON: {e}") from e
    if len(text) > MAX_CHANGE_CHARS:
        raise InvalidInput(f"audit change is {len(text)} characters, limit {MAX_CHANGE_CHARS}")
    return text


def time_text(moment: datetime) -> str:
    """The time as hashed: UTC, microseconds, ``Z``."""
    # Microseconds: what both databases keep, so a read-back row hashes the same.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    seq: int,
    created_at: datetime,
    actor: str,
    action: str,
    target: str,
    change: str,
    prev_hash: str,
) -> str:
    """Hex sha256 of the row's canonical encoding: a JSON array, no spaces, UTF-8."""
    encoded = json.dumps(
        [seq, time_text(created_at), actor, action, target, change, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return hashlib.sha256(encoded).hexdigest()


def check_field(name: str, value: str) -> None:
    """Check an actor, action or target before anything is written.

    Raises:
        InvalidInput: empty, too long for its column, or holding NUL.
    """
    limit = _LIMITS[name]
    if not value or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"audit {name} must be 1..{limit} characters without NUL")


def lock_chain(session: Session) -> None:
    """Take the append lock now, before reading what the change depends on.

    A no-op update of the head row: it waits for any other appender and holds
    the lock until the caller's transaction ends.

    Raises:
        ConfigError: the head row is missing (the migrations have not run).
    """
    result = session.execute(
        update(AuditHeadModel)
        .where(AuditHeadModel.id == _HEAD_ROW)
        .values(last_seq=AuditHeadModel.last_seq)
    )
    if not getattr(result, "rowcount", 0):
        raise ConfigError("the audit head row is missing; run the migrations")


def append(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    target: str,
    change: Mapping[str, Any],
) -> AuditEntry:
    """Append one row in the caller's transaction (it commits with the change).

    Raises:
        InvalidInput: a field is empty or too long, or ``change`` is not JSON.
        ConfigError: the head row is missing.
    """
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        check_field(name, value)
    change_text = canonical_change(change)
    found = session.execute(
        update(AuditHeadModel)
        .where(AuditHeadModel.id == _HEAD_ROW)
        .values(last_seq=AuditHeadModel.last_seq + 1)
        .returning(AuditHeadModel.last_seq, AuditHeadModel.last_hash)
    ).first()
    if found is None:
        raise ConfigError("the audit head row is missing; run the migrations")
    seq, prev_hash = int(found[0]), str(found[1])
    created_at = now.astimezone(UTC)
    digest = entry_hash(
        seq=seq,
        created_at=created_at,
        actor=actor,
        action=action,
        target=target,
        change=change_text,
        prev_hash=prev_hash,
    )
    model = AuditLogModel(
        seq=seq,
        created_at=created_at,
        actor=actor,
        action=action,
        target=target,
        change=change_text,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(model)
    try:
        session.flush()
    except IntegrityError as e:
        # Only rows written past the head (a restore or an edit) make seq or
        # prev_hash collide; the caller's change is rolled back with this row.
        raise Conflict(
            f"audit row {seq} exists already: the log does not match its head; "
            "run attestor audit verify"
        ) from e
    session.execute(
        update(AuditHeadModel).where(AuditHeadModel.id == _HEAD_ROW).values(last_hash=digest)
    )
    return _entry(model)


def _entry(model: AuditLogModel) -> AuditEntry:
    return AuditEntry(
        seq=model.seq,
        created_at=model.created_at,
        actor=model.actor,
        action=model.action,
        target=model.target,
        change=model.change,
        prev_hash=model.prev_hash,
        hash=model.hash,
    )


def head(session: Session) -> tuple[int, str]:
    """The head row: last sequence given out and its hash.

    Raises:
        ConfigError: the head row is missing.
    """
    found = session.execute(
        select(AuditHeadModel.last_seq, AuditHeadModel.last_hash).where(
            AuditHeadModel.id == _HEAD_ROW
        )
    ).first()
    if found is None:
        raise ConfigError("the audit head row is missing; run the migrations")
    return int(found[0]), str(found[1])


def entries_after(
    session: Session, after: int, limit: int, *, action_prefix: str | None = None
) -> list[AuditEntry]:
    """Up to ``limit`` rows with ``seq > after``, in order."""
    query = select(AuditLogModel).where(AuditLogModel.seq > after)
    if action_prefix:
        query = query.where(AuditLogModel.action.startswith(action_prefix, autoescape=True))
    query = query.order_by(AuditLogModel.seq).limit(limit)
    return [_entry(m) for m in session.scalars(query)]


def list_page(
    session: Session, *, cursor: str | None, limit: int, action_prefix: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """One page in sequence order after ``cursor``, and the next page's cursor.

    Raises:
        InvalidInput: a malformed cursor or a limit out of range.
    """
    check_limit(limit, MAX_PAGE)
    after = 0 if cursor is None else int(decode_cursor(cursor, (int,))[0])
    rows = entries_after(session, after, limit + 1, action_prefix=action_prefix)
    next_cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
    return rows[:limit], next_cursor


def iter_entries(session: Session, *, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every row in sequence order, read in batches (bounded memory)."""
    # Below any sequence, so rows an editor gave a zero or negative seq are read too.
    after = -(2**63)
    while True:
        page = entries_after(session, after, batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].seq
