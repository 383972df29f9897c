# SPDX-License-Identifier: Apache-2.0
"""Layer file manifests stored by content: the sha256 of their canonical bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from attestor.errors import NotFound
from attestor.store.images import flush_or_conflict
from attestor.store.models import FileManifestModel

__all__ = [
    "StoredManifest",
    "get_manifest",
    "get_manifests",
    "put_manifest",
]


@dataclass(frozen=True, kw_only=True)
class StoredManifest:
    """A manifest's canonical bytes and what identifies them."""

    sha256: str
    tree_digest: str
    body: bytes
    entry_count: int


def put_manifest(
    session: Session,
    *,
    sha256: str,
    tree_digest: str,
    body: bytes,
    entry_count: int,
    now: datetime,
) -> None:
    """Insert the manifest unless a row with this sha256 exists (content-addressed).

    Raises:
        Conflict: a concurrent transaction inserted it first; retry the transaction.
    """
    if session.get(FileManifestModel, sha256) is not None:
        return
    session.add(
        FileManifestModel(
            sha256=sha256,
            tree_digest=tree_digest,
            body=body,
            entry_count=entry_count,
            created_at=now,
        )
    )
    flush_or_conflict(session, f"manifest {sha256}")


def get_manifest(session: Session, sha256: str) -> StoredManifest:
    """The stored manifest ``sha256`` (``sha256:<hex>``).

    Raises:
        NotFound: no manifest has this digest.
    """
    model = session.get(FileManifestModel, sha256)
    if model is None:
        raise NotFound(f"no layer manifest {sha256}")
    return StoredManifest(
        sha256=model.sha256,
        tree_digest=model.tree_digest,
        body=bytes(model.body),
        entry_count=model.entry_count,
    )


def get_manifests(session: Session, digests: Sequence[str]) -> dict[str, StoredManifest]:
    """The stored manifests among ``digests``, by sha256, in one query."""
    query = select(FileManifestModel).where(FileManifestModel.sha256.in_(sorted(set(digests))))
    return {
        m.sha256: StoredManifest(
            sha256=m.sha256,
            tree_digest=m.tree_digest,
            body=bytes(m.body),
            entry_count=m.entry_count,
        )
        for m in session.scalars(query)
    }
