# SPDX-License-Identifier: Apache-2.0
"""Create and revoke bearer tokens with their audit rows, in the caller's transaction.

The API and ``attestor token`` both go through here, so every token change
is in the audit log whoever made it. Secrets never reach the log: only the
token id, role, agent id and name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from attestor.services import audit
from attestor.store import tokens as store

__all__ = ["create_token", "revoke_token"]


def create_token(
    session: Session,
    *,
    role: str,
    agent_id: str | None,
    name: str,
    actor: str,
    now: datetime,
) -> tuple[str, store.TokenRow]:
    """Create a token (plaintext returned once) and record ``token.create``.

    Raises:
        InvalidInput: unknown role, agent_id missing or misplaced, or a bad actor.
    """
    plaintext, row = store.create_token(session, role=role, agent_id=agent_id, name=name, now=now)
    audit.record(
        session,
        actor=actor,
        action="token.create",
        target=f"token:{row.id}",
        change={"role": row.role, "agent_id": row.agent_id, "name": row.name},
        now=now,
    )
    return plaintext, row


def revoke_token(session: Session, token_id: str, *, actor: str, now: datetime) -> store.TokenRow:
    """Revoke a token and record ``token.revoke`` (nothing when it was revoked before).

    Raises:
        NotFound: no such token.
        Conflict: the last active admin token.
    """
    row = store.revoke_token(session, token_id, now=now)
    if row.revoked_at == now:
        audit.record(
            session,
            actor=actor,
            action="token.revoke",
            target=f"token:{row.id}",
            change={"role": row.role, "agent_id": row.agent_id},
            now=now,
        )
    return row
