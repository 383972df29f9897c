# SPDX-License-Identifier: Apache-2.0
"""Image rows: one per (registry, repository, manifest digest)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from attestor.errors import Conflict, Unavailable
from attestor.store.models import ImageModel

__all__ = ["ImageRow", "find_image", "flush_or_conflict", "get_or_add_image"]


@dataclass(frozen=True, kw_only=True)
class ImageRow:
    """An image as stored; ``tag`` is the one of the first request that named it."""

    id: str
    registry: str
    repository: str
    tag: str | None
    manifest_digest: str
    media_type: str
    requested_reference: str
    created_at: datetime


def flush_or_conflict(session: Session, what: str) -> None:
    """Flush, translating a lost race into ``Conflict`` (the caller retries).

    Raises:
        Conflict: a unique constraint was hit, or SQLite refused the write
            because a concurrent transaction holds the write lock.
        Unavailable: the database failed otherwise.
    """
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"{what} was added concurrently") from e
    except OperationalError as e:
        # SQLite in WAL mode answers SQLITE_BUSY at once when a reader upgrades
        # to a writer after another writer committed: a lost race, not an outage.
        if "locked" in str(e.orig) or "busy" in str(e.orig):
            raise Conflict(f"{what}: the database was busy with a concurrent write") from e
        raise Unavailable(f"database error while storing {what}: {type(e.orig).__name__}") from e


def _row(m: ImageModel) -> ImageRow:
    return ImageRow(
        id=m.id,
        registry=m.registry_host,
        repository=m.repository,
        tag=m.tag,
        manifest_digest=m.manifest_digest,
        media_type=m.media_type,
        requested_reference=m.requested_reference,
        created_at=m.created_at,
    )


def find_image(
    session: Session, *, registry: str, repository: str, manifest_digest: str
) -> ImageRow | None:
    """The image row for this manifest in this repository, if any."""
    model = session.scalar(
        select(ImageModel).where(
            ImageModel.registry_host == registry,
            ImageModel.repository == repository,
            ImageModel.manifest_digest == manifest_digest,
        )
    )
    return _row(model) if model is not None else None


def get_or_add_image(
    session: Session,
    *,
    registry: str,
    repository: str,
    tag: str | None,
    manifest_digest: str,
    media_type: str,
    requested_reference: str,
    now: datetime,
) -> ImageRow:
    """Return the existing row or insert one.

    Raises:
        Conflict: a concurrent transaction inserted the same image first; the
            caller's transaction must be rolled back and retried.
    """
    existing = find_image(
        session, registry=registry, repository=repository, manifest_digest=manifest_digest
    )
    if existing is not None:
        return existing
    model = ImageModel(
        id=str(uuid.uuid4()),
        registry_host=registry,
        repository=repository,
        tag=tag,
        manifest_digest=manifest_digest,
        media_type=media_type,
        requested_reference=requested_reference,
        created_at=now,
    )
    session.add(model)
    flush_or_conflict(session, f"image {registry}/{repository}@{manifest_digest}")
    return _row(model)
