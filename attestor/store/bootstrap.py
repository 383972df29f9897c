# SPDX-License-Identifier: Apache-2.0
"""Start-up preparation shared by ``attestor serve``, ``create_app`` and the CLI.

Creates the data directories, migrates the database, seeds the admin token,
makes sure one signing key is active and fails in-process jobs whose server
process stopped beating. Every step is idempotent, so running it
again (a second worker, a restart) changes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlparse

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from attestor.config import Settings
from attestor.errors import ConfigError
from attestor.store import jobs, signing_keys, tokens
from attestor.store.db import make_session_factory, upgrade

__all__ = ["Prepared", "ensure_dirs", "prepare"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What start-up did that the operator must hear about."""

    #: Plaintext of an admin token created because none existed; shown once.
    first_admin_token: str | None
    #: keyid of the active signing key.
    active_keyid: str


def ensure_dirs(settings: Settings) -> None:
    """Create ``data_dir`` and ``data_dir/keys`` (mode 0700).

    Raises:
        ConfigError: A directory cannot be created.
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.keys_dir.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode is masked by the umask; the keys directory must be private.
        os.chmod(settings.keys_dir, 0o700)
    except OSError as e:
        raise ConfigError(f"cannot create data directory {settings.data_dir}: {e.strerror}") from e


def prepare(settings: Settings, engine: Engine, *, now: datetime) -> Prepared:
    """Run every start-up step.

    Raises:
        ConfigError: Directories or the configured signing key are unusable.
        Unavailable: The database cannot be reached or migrated.
    """
    ensure_dirs(settings)
    upgrade(engine)
    factory = make_session_factory(engine)
    first_token: str | None = None
    with factory.begin() as session:
        if settings.admin_token is not None:
            tokens.ensure_token(
                session, settings.admin_token, role="admin", now=now, name="ATTESTOR_ADMIN_TOKEN"
            )
        elif tokens.count_tokens(session, active_only=False) == 0:
            first_token, _ = tokens.create_token(
                session, role="admin", now=now, name="first admin token"
            )
        keyid = _ensure_signing_key(session, settings, now=now)
    # Only in-process jobs have an owner, so this is safe with Redis too (and ends
    # those left behind by a switch to Redis). Jobs of a process killed just now
    # still look alive: the in-process runners' periodic pass fails them later.
    with factory.begin() as session:
        interrupted = jobs.fail_abandoned(session, heartbeat_s=settings.inline_heartbeat_s, now=now)
    if interrupted:
        log.warning("failed %d interrupted job(s): %s", len(interrupted), ", ".join(interrupted))
    return Prepared(first_admin_token=first_token, active_keyid=keyid)


def _ensure_signing_key(session: Session, settings: Settings, *, now: datetime) -> str:
    active = signing_keys.active_key(session)
    if active is not None:
        return active.keyid
    from attestor.signing import keys  # the signing core; imported late to keep start-up light

    if settings.signing_key is None:
        uri, info = keys.generate_key_file(settings.keys_dir, "ecdsa-p256")
    else:
        uri, info = settings.signing_key, keys.public_key_info(_public_pem_of(settings.signing_key))
    row = signing_keys.add_active_key(
        session,
        keyid=info.keyid,
        algorithm=info.algorithm,
        public_key_pem=info.public_key_pem,
        signer_uri=uri,
        now=now,
    )
    return row.keyid


def _public_pem_of(uri: str) -> bytes:
    # Only file keys can be registered automatically: other signer URIs (KMS, HSM)
    # need their public key supplied by an operator.
    from cryptography.hazmat.primitives import serialization

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ConfigError(
            f"ATTESTOR_SIGNING_KEY {parsed.scheme}: cannot derive its public key; "
            "register the key before starting"
        )
    path = unquote(parsed.path)
    try:
        with open(path, "rb") as f:
            private = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"ATTESTOR_SIGNING_KEY {path}: not a readable PEM private key") from e
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
