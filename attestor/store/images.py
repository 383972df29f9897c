# SPDX-License-Identifier: Apache-2.0
"""Image rows: one per (registry, repository, manifest digest)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attestor.errors import Conflict
from attestor.store.models import ImageModel

__all__ = ["ImageRow", "find_image", "get_or_add_image"]


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
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(
            f"image {registry}/{repository}@{manifest_digest} was added concurrently"
        ) from e
    return _row(model)
