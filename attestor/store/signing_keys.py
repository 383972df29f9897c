# SPDX-License-Identifier: Apache-2.0
"""Signing key rows. ``signer_uri`` stays inside the server; the API never shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attestor.errors import Conflict, InvalidInput, NotFound
from attestor.store.models import KEY_ALGORITHMS, KEYLESS_ALGORITHM, SigningKeyModel

__all__ = [
    "SigningKeyRow",
    "active_key",
    "add_active_key",
    "add_key",
    "ensure_keyless_row",
    "get_key",
    "list_keys",
    "retire_active",
    "set_status",
]


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


def get_key(session: Session, keyid: str) -> SigningKeyRow:
    """One key.

    Raises:
        NotFound: no key has this keyid.
    """
    model = session.get(SigningKeyModel, keyid)
    if model is None:
        raise NotFound(f"no signing key {keyid[:130]!r}")
    return _row(model)


def add_key(
    session: Session,
    *,
    keyid: str,
    algorithm: str,
    public_key_pem: str,
    signer_uri: str,
    status: str,
    now: datetime,
) -> SigningKeyRow:
    """Insert a key with ``status`` (``active`` only when no key is active).

    Raises:
        Conflict: the keyid exists, or another key became active concurrently.
    """
    if session.get(SigningKeyModel, keyid) is not None:
        raise Conflict(f"signing key {keyid} already exists")
    model = SigningKeyModel(
        keyid=keyid,
        algorithm=algorithm,
        public_key_pem=public_key_pem,
        signer_uri=signer_uri,
        status=status,
        created_at=now,
        retired_at=now if status == "retired" else None,
    )
    session.add(model)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict("another signing key became active concurrently; retry") from e
    return _row(model)


def retire_active(session: Session, *, now: datetime) -> SigningKeyRow | None:
    """Retire the active key (it stays verifiable); returns it, or None if none was active."""
    current = active_key(session)
    if current is None:
        return None
    return set_status(session, current.keyid, "retired", now=now)


def set_status(
    session: Session, keyid: str, status: str, *, now: datetime, reason: str | None = None
) -> SigningKeyRow:
    """Move a key to ``retired``, ``active`` or ``revoked`` (revoked is final).

    Raises:
        NotFound: no key has this keyid.
        Conflict: the key is revoked, or another key is active.
    """
    model = session.get(SigningKeyModel, keyid)
    if model is None:
        raise NotFound(f"no signing key {keyid[:130]!r}")
    if model.status == "revoked" and status != "revoked":
        raise Conflict(f"signing key {keyid} is revoked; it cannot become {status}")
    if model.status == status:
        return _row(model)
    model.status = status
    if status == "retired":
        model.retired_at = now
    elif status == "revoked":
        model.revoked_at = now
        model.revocation_reason = reason
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict("another signing key is active; retire it first") from e
    return _row(model)


def ensure_keyless_row(
    session: Session, keyid: str, *, signer_uri: str, now: datetime
) -> SigningKeyRow:
    """The pseudo key row of a keyless identity, inserted on first use.

    It is ``retired`` (it never signs itself: each signature has its own
    certified ephemeral key) until revoked, has no public key, and is left out
    of key listings; attestations reference it by keyid.

    Raises:
        Conflict: a concurrent insert of the same row; the caller retries.
    """
    model = session.get(SigningKeyModel, keyid)
    if model is not None:
        return _row(model)
    model = SigningKeyModel(
        keyid=keyid,
        algorithm=KEYLESS_ALGORITHM,
        public_key_pem="",
        signer_uri=signer_uri,
        status="retired",
        created_at=now,
        retired_at=now,
    )
    session.add(model)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"keyless identity row {keyid} was inserted concurrently") from e
    return _row(model)
