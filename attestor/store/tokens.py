# SPDX-License-Identifier: Apache-2.0
"""Bearer tokens: created here, stored only as sha256 hashes, looked up by hash.

A token is 32 random bytes (urlsafe base64) behind an ``att_`` prefix. Lookup
is by the hash of the presented value, so the database never compares secrets
and timing does not depend on how much of a guess matches; the final
``hmac.compare_digest`` keeps that true whatever index the database uses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attestor.errors import Conflict, InvalidInput, NotFound
from attestor.store._commits import CommitCounter
from attestor.store.models import TOKEN_ROLES, TokenModel

__all__ = [
    "ROLES",
    "TokenRow",
    "TokensFingerprint",
    "authenticate",
    "authenticate_hash",
    "count_tokens",
    "create_token",
    "ensure_token",
    "fingerprint",
    "hash_token",
    "list_tokens",
    "local_revocations",
    "revoke_token",
]

ROLES = TOKEN_ROLES
TOKEN_PREFIX = "att_"  # noqa: S105 - a marker for secret scanners, not a secret
#: last_used_at is refreshed at most this often, to keep reads from writing.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class TokenRow:
    """A token's metadata; it never holds the secret."""

    id: str
    role: str
    agent_id: str | None
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the token may still authenticate."""
        return self.revoked_at is None


def hash_token(plaintext: str) -> str:
    """Return the sha256 hex digest stored for a token."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _row(model: TokenModel) -> TokenRow:
    return TokenRow(
        id=model.id,
        role=model.role,
        agent_id=model.agent_id,
        name=model.name,
        created_at=model.created_at,
        last_used_at=model.last_used_at,
        revoked_at=model.revoked_at,
    )


def _check_role(role: str, agent_id: str | None) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "agent" and not agent_id:
        raise InvalidInput("an agent token needs an agent_id")
    if role != "agent" and agent_id:
        raise InvalidInput(f"agent_id is only allowed for role agent, got role {role!r}")


def create_token(
    session: Session,
    *,
    role: str,
    now: datetime,
    agent_id: str | None = None,
    name: str = "",
) -> tuple[str, TokenRow]:
    """Create a token and return its plaintext (shown once) and its row.

    Raises:
        InvalidInput: Unknown role, or an agent_id missing or misplaced.
    """
    _check_role(role, agent_id)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, _insert(session, plaintext, role=role, agent_id=agent_id, name=name, now=now)


def ensure_token(
    session: Session, plaintext: str, *, role: str, now: datetime, name: str = ""
) -> TokenRow:
    """Make sure a given plaintext token exists (idempotent, matched by hash).

    Used to seed ``ATTESTOR_ADMIN_TOKEN``. A revoked token stays revoked.

    Raises:
        InvalidInput: Unknown role.
        Conflict: The token exists with another role.
    """
    _check_role(role, None)
    existing = session.scalar(
        select(TokenModel).where(TokenModel.token_hash == hash_token(plaintext))
    )
    if existing is not None:
        if existing.role != role:
            raise Conflict(f"the seeded token already exists with role {existing.role!r}")
        return _row(existing)
    return _insert(session, plaintext, role=role, agent_id=None, name=name, now=now)


def _insert(
    session: Session, plaintext: str, *, role: str, agent_id: str | None, name: str, now: datetime
) -> TokenRow:
    model = TokenModel(
        id=str(uuid.uuid4()),
        token_hash=hash_token(plaintext),
        role=role,
        agent_id=agent_id,
        name=name,
        created_at=now,
    )
    session.add(model)
    session.flush()
    return _row(model)


def authenticate(session: Session, plaintext: str, *, now: datetime) -> TokenRow | None:
    """Return the active token matching ``plaintext``, or ``None``.

    Revoked and unknown tokens both give ``None``. Refreshes ``last_used_at``
    (at most once per minute).
    """
    return authenticate_hash(session, hash_token(plaintext), now=now)


def authenticate_hash(session: Session, digest: str, *, now: datetime) -> TokenRow | None:
    """:func:`authenticate` for a token already hashed with :func:`hash_token`."""
    model = session.scalar(select(TokenModel).where(TokenModel.token_hash == digest))
    if model is None or not hmac.compare_digest(model.token_hash, digest):
        return None
    if model.revoked_at is not None:
        return None
    if model.last_used_at is None or now - model.last_used_at >= LAST_USED_RESOLUTION:
        model.last_used_at = now
        session.flush()
    return _row(model)


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[TokenRow]:
    """All tokens, oldest first, without secrets."""
    query = select(TokenModel).order_by(TokenModel.created_at, TokenModel.id)
    if not include_revoked:
        query = query.where(TokenModel.revoked_at.is_(None))
    return [_row(m) for m in session.scalars(query)]


def count_tokens(session: Session, *, role: str | None = None, active_only: bool = True) -> int:
    """Number of tokens, optionally of one role."""
    query = select(func.count()).select_from(TokenModel)
    if role is not None:
        query = query.where(TokenModel.role == role)
    if active_only:
        query = query.where(TokenModel.revoked_at.is_(None))
    return int(session.scalar(query) or 0)


def revoke_token(session: Session, token_id: str, *, now: datetime) -> TokenRow:
    """Revoke a token (idempotent).

    Raises:
        NotFound: No token has this id.
        Conflict: It is the last active admin token; revoking it would lock
            everyone out of the admin API.
    """
    model = session.get(TokenModel, token_id)
    if model is None:
        raise NotFound(f"no token with id {token_id!r}")
    if model.revoked_at is None:
        if model.role == "admin" and count_tokens(session, role="admin") <= 1:
            raise Conflict("refusing to revoke the last active admin token")
        model.revoked_at = now
        session.flush()
        _REVOCATIONS.mark(session)
    return _row(model)


# Token revocations committed by this process: a cache of authenticated tokens
# compares it on every lookup, so a revocation made here is seen at once
# (other processes see it through :func:`fingerprint`).
_REVOCATIONS: Final = CommitCounter()


def local_revocations() -> int:
    """How many token revocations this process has committed (it only grows)."""
    return _REVOCATIONS.value


@dataclass(frozen=True)
class TokensFingerprint:
    """Aggregates of the token table that change when a token is revoked or deleted."""

    total: int
    revoked: int
    newest_created: datetime | None
    newest_revoked: datetime | None


def fingerprint(session: Session) -> TokensFingerprint:
    """Read :class:`TokensFingerprint` (one aggregate query over the token table).

    A revocation raises ``revoked``; a deletion lowers ``total``; hiding a
    deletion behind a creation needs a creation time older than the newest one,
    which only a hand-written SQL edit can do.
    """
    t = TokenModel
    query = select(
        func.count(), func.count(t.revoked_at), func.max(t.created_at), func.max(t.revoked_at)
    )
    row = session.execute(query).one()
    return TokensFingerprint(
        total=int(row[0]), revoked=int(row[1]), newest_created=row[2], newest_revoked=row[3]
    )
