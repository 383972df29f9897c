# SPDX-License-Identifier: Apache-2.0
"""Signing-key row changes that ``attestor.store.signing_keys`` does not offer yet.

These belong in ``attestor/store/signing_keys.py``; they live here until its
owner adds them (insert a non-active key, retire, revoke, get).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attestor.errors import Conflict, NotFound
from attestor.store.models import KEYLESS_ALGORITHM, SigningKeyModel
from attestor.store.signing_keys import SigningKeyRow, active_key

__all__ = ["add_key", "ensure_keyless_row", "get_key", "retire_active", "set_status"]


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
