# SPDX-License-Identifier: Apache-2.0
"""Key management: list, generate, import, rotate and revoke signing keys.

Private keys never leave the server: generated and imported PEM keys are
written as 0600 files under ``keys_dir`` by :mod:`attestor.signing.keys`, keys
registered by signer URI stay where the URI names them, and what this module
returns (:class:`PublicKey`) has no signer URI. With ``key_files="external"``
(several replicas, each with its own ``keys_dir``) nothing is written: only
signer URIs are accepted. Revoking the active key leaves no active key;
issuance then fails with ``Conflict`` until a key is rotated in.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream
from sqlalchemy.orm import Session

from attestor.errors import Conflict, Error, InvalidInput
from attestor.signing.keys import (
    ALGORITHMS,
    PublicKeyInfo,
    generate_key_file,
    import_private_key_pem,
    import_signer_uri,
    load_signer,
    sslib_key,
)
from attestor.signing.keyset import MAX_SIGNERS, KeySetKey, build_key_set, sign_key_set
from attestor.store import attestations as attestation_store
from attestor.store import signing_keys as key_store
from attestor.store.signing_keys import SigningKeyRow

__all__ = [
    "KEY_FILES_EXTERNAL",
    "ActiveSigner",
    "PublicKey",
    "active_signer",
    "add_key",
    "list_public_keys",
    "revoke_key",
    "rotate_key",
    "signed_key_set",
]

log = logging.getLogger("attestor.keys")


KeyFiles = Literal["local", "external"]

#: The ``reason`` of the Conflict raised when keys_dir may not be written.
KEY_FILES_EXTERNAL = "key-files-external"


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


class _SignedSets:
    """Signed key-set bodies per payload digest (ECDSA signatures differ each time)."""

    def __init__(self, max_entries: int = 16) -> None:
        self._max = max_entries
        self._items: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            return self._items.get(digest)

    def put(self, digest: str, body: bytes) -> bytes:
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()  # a few keys change rarely: no LRU needed
            return self._items.setdefault(digest, body)


_SIGNED_SETS = _SignedSets()


def signed_key_set(session: Session) -> bytes:
    """The key set (docs/key-set.md) as DSSE envelope JSON, signed by every key not revoked.

    Every key that is not revoked signs (the newest :data:`MAX_SIGNERS`, the
    active one first), so the set that a rotation produces is signed by the
    keys agents already pin. A retired key whose signer cannot be loaded (a
    KMS down, a file gone) is left out and logged; the active key must sign.
    The body is kept per payload, so polls do not sign again.

    Raises:
        Conflict: no key is left that may sign (every key is revoked).
        ConfigError: the active key cannot be loaded.
        UpstreamError: a signer failed.
    """
    rows = key_store.list_keys(session)
    if not rows:
        raise Conflict("no signing key yet", detail={"reason": "no-active-key"})
    payload = build_key_set(
        [
            KeySetKey(
                keyid=r.keyid,
                algorithm=r.algorithm,
                public_key_pem=r.public_key_pem,
                status=r.status,
                created=r.created_at,
                retired=r.retired_at,
                revoked=r.revoked_at,
            )
            for r in rows
        ]
    )
    digest = hashlib.sha256(payload).hexdigest()
    body = _SIGNED_SETS.get(digest)
    if body is not None:
        return body
    usable = [r for r in reversed(rows) if r.status != "revoked"]
    usable.sort(key=lambda r: r.status != "active")  # stable: active, then newest first
    signers = []
    for row in usable[:MAX_SIGNERS]:
        try:
            signers.append(
                (load_signer(row.signer_uri, public_key=sslib_key(row.public_key_pem)), row.keyid)
            )
        except Error as e:
            if row.status == "active":
                raise
            log.warning("key set not signed by retired key %s: %s", row.keyid, e.message)
    if not signers:
        raise Conflict(
            "no key that is not revoked can sign the key set; rotate a key in",
            detail={"reason": "no-active-key"},
        )
    return _SIGNED_SETS.put(digest, sign_key_set(payload, signers).to_json())


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


def _refuse_key_files(action: str) -> Conflict:
    return Conflict(
        f"signing keys are external (ATTESTOR_KEY_FILES=external): {action} would write a "
        "private key into this replica's data directory, which the other replicas cannot "
        "read. To rotate, make the new key loadable on every replica (a key file in a "
        "Secret every replica mounts, or a KMS key), then POST /v1/keys with its "
        '"signer_uri" and "activate": true',
        detail={"reason": KEY_FILES_EXTERNAL},
    )


def _file_under(uri: str, directory: Path) -> bool:
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return False
    path = Path(unquote(parts.path))
    return path.resolve().is_relative_to(directory.resolve())


def add_key(
    session: Session,
    *,
    keys_dir: Path,
    now: datetime,
    algorithm: str | None = None,
    private_key_pem: str | None = None,
    password: str | None = None,
    signer_uri: str | None = None,
    public_key_pem: str | None = None,
    activate: bool = False,
    key_files: KeyFiles = "local",
    replica_dir: Path | None = None,
) -> PublicKey:
    """Generate (``algorithm``), import (``private_key_pem``) or register (``signer_uri``) a key.

    A ``signer_uri`` is loaded and made to sign once before it is stored; a
    ``file:`` URI gives its public key, other schemes need ``public_key_pem``.
    The key is ``retired`` (verifiable, not used to sign) unless ``activate``,
    which retires the current active key.

    Args:
        key_files: ``external`` refuses generation and PEM import (they would
            write into this replica's ``keys_dir``).
        replica_dir: with ``external``, the replica-local directory (the data
            dir) that a ``file:`` signer URI must not point into.

    Raises:
        InvalidInput: not exactly one source, an unknown algorithm, a PEM that
            is not an accepted private key, or a signer URI that cannot sign.
        Conflict: the key is already registered, or ``external`` forbids
            writing key files (``detail.reason`` ``key-files-external``).
    """
    sources = [x for x in (algorithm, private_key_pem, signer_uri) if x is not None]
    if len(sources) != 1:
        raise InvalidInput("give exactly one of algorithm, private_key_pem or signer_uri")
    if public_key_pem is not None and signer_uri is None:
        raise InvalidInput("public_key_pem goes only with signer_uri")
    if signer_uri is not None:
        if key_files == "external" and replica_dir is not None:
            if _file_under(signer_uri, replica_dir):
                raise InvalidInput(
                    "signer_uri points into this replica's data directory, which the other "
                    "replicas cannot read (ATTESTOR_KEY_FILES=external)"
                )
        uri, info = import_signer_uri(signer_uri, public_key_pem)
    elif key_files == "external":
        raise _refuse_key_files("generating" if algorithm is not None else "importing a PEM")
    else:
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


def rotate_key(
    session: Session,
    *,
    keys_dir: Path,
    algorithm: str,
    now: datetime,
    key_files: KeyFiles = "local",
) -> PublicKey:
    """Generate a key and make it the active one; the old key is retired, still verifiable.

    Raises:
        InvalidInput: an unknown algorithm.
        Conflict: a concurrent rotation won, or ``external`` forbids writing
            key files (rotate by ``add_key(signer_uri=..., activate=True)``).
    """
    return add_key(
        session,
        keys_dir=keys_dir,
        algorithm=algorithm,
        activate=True,
        now=now,
        key_files=key_files,
    )


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
