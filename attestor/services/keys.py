# SPDX-License-Identifier: Apache-2.0
"""Key management: list, generate, import, rotate and revoke signing keys.

Private keys never leave the server: they are written as 0600 files under
``keys_dir`` by :mod:`attestor.signing.keys`, and what this module returns
(:class:`PublicKey`) has no signer URI. Revoking the active key leaves no
active key; issuance then fails with ``Conflict`` until a key is rotated in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream
from sqlalchemy.orm import Session

from attestor.errors import Conflict, InvalidInput
from attestor.signing.keys import (
    ALGORITHMS,
    PublicKeyInfo,
    generate_key_file,
    import_private_key_pem,
    load_signer,
    sslib_key,
)
from attestor.store import attestations as attestation_store
from attestor.store import signing_keys as key_store
from attestor.store.signing_keys import SigningKeyRow

__all__ = [
    "ActiveSigner",
    "PublicKey",
    "active_signer",
    "add_key",
    "list_public_keys",
    "revoke_key",
    "rotate_key",
]


@dataclass(frozen=True, kw_only=True)
class PublicKey:
    """What the API may show about a key: public material and lifecycle only."""

    keyid: str
    algorithm: str
    public_key_pem: str
    status: str
    created: datetime
    retired: datetime | None
    revoked: datetime | None
    revocation_reason: str | None


@dataclass(frozen=True)
class ActiveSigner:
    """The signer of the active key and the keyid written into signatures."""

    signer: Signer
    keyid: str


def _public(row: SigningKeyRow) -> PublicKey:
    return PublicKey(
        keyid=row.keyid,
        algorithm=row.algorithm,
        public_key_pem=row.public_key_pem,
        status=row.status,
        created=row.created_at,
        retired=row.retired_at,
        revoked=row.revoked_at,
        revocation_reason=row.revocation_reason,
    )


def list_public_keys(session: Session) -> list[PublicKey]:
    """Every key, oldest first, without private material."""
    return [_public(row) for row in key_store.list_keys(session)]


def _create_file(
    keys_dir: Path, algorithm: str | None, private_key_pem: str | None, password: str | None
) -> tuple[str, PublicKeyInfo]:
    if (algorithm is None) == (private_key_pem is None):
        raise InvalidInput("give exactly one of algorithm (generate) or private_key_pem (import)")
    try:
        if private_key_pem is not None:
            return import_private_key_pem(
                keys_dir,
                private_key_pem.encode("utf-8"),
                password.encode("utf-8") if password is not None else None,
            )
        if algorithm not in ALGORITHMS:
            raise InvalidInput(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
        return generate_key_file(keys_dir, algorithm)
    except InvalidInput as e:
        if "already exists" in e.message:
            raise Conflict("this key is already registered") from None
        raise
    except OSError as e:
        raise Conflict(f"cannot write the key file: {e.strerror}") from e


def add_key(
    session: Session,
    *,
    keys_dir: Path,
    now: datetime,
    algorithm: str | None = None,
    private_key_pem: str | None = None,
    password: str | None = None,
    activate: bool = False,
) -> PublicKey:
    """Generate (``algorithm``) or import (``private_key_pem``) a key.

    The key is ``retired`` (verifiable, not used to sign) unless ``activate``,
    which retires the current active key.

    Raises:
        InvalidInput: neither or both of algorithm and PEM, an unknown
            algorithm, or a PEM that is not an accepted private key.
        Conflict: the key is already registered.
    """
    uri, info = _create_file(keys_dir, algorithm, private_key_pem, password)
    if activate:
        key_store.retire_active(session, now=now)
    row = key_store.add_key(
        session,
        keyid=info.keyid,
        algorithm=info.algorithm,
        public_key_pem=info.public_key_pem,
        signer_uri=uri,
        status="active" if activate else "retired",
        now=now,
    )
    return _public(row)


def rotate_key(session: Session, *, keys_dir: Path, algorithm: str, now: datetime) -> PublicKey:
    """Generate a key and make it the active one; the old key is retired, still verifiable.

    Raises:
        InvalidInput: an unknown algorithm.
        Conflict: a concurrent rotation won.
    """
    return add_key(session, keys_dir=keys_dir, algorithm=algorithm, activate=True, now=now)


def revoke_key(session: Session, keyid: str, *, reason: str, now: datetime) -> PublicKey:
    """Revoke a key and mark every attestation it signed revoked.

    Raises:
        NotFound: no key has this keyid.
    """
    row = key_store.set_status(session, keyid, "revoked", now=now, reason=reason)
    attestation_store.revoke_by_key(session, keyid)
    return _public(row)


def active_signer(session: Session) -> ActiveSigner:
    """Load the signer of the active key.

    Raises:
        Conflict: no key is active (the last one was revoked); rotate one in.
        ConfigError: the key's file or signer URI cannot be loaded.
    """
    row = key_store.active_key(session)
    if row is None:
        raise Conflict(
            "no active signing key: the active key was revoked; rotate a new key in "
            "with POST /v1/keys/rotate",
            detail={"reason": "no-active-key"},
        )
    signer = load_signer(row.signer_uri, public_key=sslib_key(row.public_key_pem))
    return ActiveSigner(signer=signer, keyid=row.keyid)
