# SPDX-License-Identifier: Apache-2.0
"""Reuse the diffID and file manifest of layers this server already scanned.

Re-issuing an image (a new key or policy version) would otherwise decompress
and hash every layer again. What a scan yields depends only on:

* the blob's bytes, named by its digest, which the blob cache verified, and
  the media type that says how to decompress them;
* the layers below, because implicit parent directories are resolved against
  them (``docs/layer-manifest.md``): the chainID commits to all their diffIDs.

So a scan is looked up by ``(blob digest, media type, chainID)`` in the
attestations already stored, and its manifest is read back from the
content-addressed manifest table and checked against its sha256. Anything
that does not match exactly is scanned again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import InvalidInput
from attestor.manifest import FileManifest, ManifestLimits
from attestor.registry import LayerDescriptor
from attestor.store import attestations as attestation_store
from attestor.store import manifests as manifest_store

__all__ = ["KnownScan", "known_scans"]


@dataclass(frozen=True)
class KnownScan:
    """A layer's diffID and file manifest from an earlier, verified scan."""

    diff_id: str
    manifest: FileManifest


def known_scans(
    session_factory: sessionmaker[Session],
    layers: Sequence[LayerDescriptor],
    chain_ids: Sequence[str],
    *,
    limits: ManifestLimits,
) -> dict[int, KnownScan]:
    """Earlier scans of these layers, by layer index (missing ones are absent)."""
    with session_factory() as session:
        rows = attestation_store.find_layer_scans(session, [layer.digest for layer in layers])
        hits = {
            index: hit
            for index, layer in enumerate(layers)
            if (hit := rows.get((layer.digest, layer.media_type, chain_ids[index]))) is not None
        }
        stored = manifest_store.get_manifests(session, [sha for _, sha in hits.values()])
    found: dict[int, KnownScan] = {}
    for index, (diff_id, manifest_sha256) in hits.items():
        body = stored.get(manifest_sha256)
        if body is None:
            continue
        try:
            manifest = FileManifest.from_canonical_bytes(body.body, limits=limits)
        except InvalidInput:
            continue  # scan it again rather than trust a damaged row
        if manifest.sha256 == manifest_sha256:
            found[index] = KnownScan(diff_id=diff_id, manifest=manifest)
    return found
