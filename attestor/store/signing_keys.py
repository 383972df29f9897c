# SPDX-License-Identifier: Apache-2.0
"""Signing key rows. ``signer_uri`` stays inside the server; the API never shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestor.errors import Conflict, InvalidInput
from attestor.store.models import KEY_ALGORITHMS, KEYLESS_ALGORITHM, SigningKeyModel

__all__ = ["SigningKeyRow", "active_key", "add_active_key", "list_keys"]


@dataclass(frozen=True, kw_only=True)
class SigningKeyRow:
    """A signing key as stored."""

    keyid: str
    algorithm: str
    public_key_pem: str
    signer_uri: str
    status: str
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None
    revocation_reason: str | None


def _row(m: SigningKeyModel) -> SigningKeyRow:
    return SigningKeyRow(
        keyid=m.keyid,
        algorithm=m.algorithm,
        public_key_pem=m.public_key_pem,
        signer_uri=m.signer_uri,
        status=m.status,
        created_at=m.created_at,
        retired_at=m.retired_at,
        revoked_at=m.revoked_at,
        revocation_reason=m.revocation_reason,
    )


def active_key(session: Session) -> SigningKeyRow | None:
    """The one active key, if any."""
    model = session.scalar(select(SigningKeyModel).where(SigningKeyModel.status == "active"))
    return _row(model) if model is not None else None


def list_keys(session: Session) -> list[SigningKeyRow]:
    """All keys, oldest first; not the pseudo rows of keyless identities (no public key)."""
    query = (
        select(SigningKeyModel)
        .where(SigningKeyModel.algorithm != KEYLESS_ALGORITHM)
        .order_by(SigningKeyModel.created_at, SigningKeyModel.keyid)
    )
    return [_row(m) for m in session.scalars(query)]


def add_active_key(
    session: Session,
    *,
    keyid: str,
    algorithm: str,
    public_key_pem: str,
    signer_uri: str,
    now: datetime,
) -> SigningKeyRow:
    """Insert a key as the active one.

    Raises:
        InvalidInput: Unknown algorithm.
        Conflict: Another key is active (retire it first) or the keyid exists.
    """
    if algorithm not in KEY_ALGORITHMS:
        raise InvalidInput(
            f"algorithm must be one of {', '.join(KEY_ALGORITHMS)}, got {algorithm!r}"
        )
    current = active_key(session)
    if current is not None:
        raise Conflict(f"key {current.keyid} is already active")
    if session.get(SigningKeyModel, keyid) is not None:
        raise Conflict(f"key {keyid} already exists")
    model = SigningKeyModel(
        keyid=keyid,
        algorithm=algorithm,
        public_key_pem=public_key_pem,
        signer_uri=signer_uri,
        status="active",
        created_at=now,
    )
    session.add(model)
    session.flush()
    return _row(model)
