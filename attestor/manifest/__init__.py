# SPDX-License-Identifier: Apache-2.0
"""The layer file manifest: from a tar stream, from a snapshot directory,
its canonical serialization, tree digest and comparison.

The format is specified in ``docs/layer-manifest.md``. The server computes it
with :func:`manifest_from_layer_blob` (or :func:`manifest_from_tar`); the agent
recomputes it with :func:`scan_snapshot` and compares with
:func:`compare_manifests`. For an untouched layer both give equal bytes.
"""

from __future__ import annotations

from attestor.manifest._compare import Change, ChangeKind, compare_manifests
from attestor.manifest._merkle import inclusion_proof, leaf_hash, root_from_inclusion_proof
from attestor.manifest._model import (
    MEDIA_TYPE,
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
)
from attestor.manifest._snapshot import (
    FileState,
    SnapshotCheck,
    SnapshotState,
    compare_snapshot,
    manifest_from_snapshot,
    scan_snapshot,
)
from attestor.manifest._stream import (
    LAYER_MEDIA_TYPES,
    HashingReader,
    LayerScan,
    manifest_from_layer_blob,
    open_decompressed,
)
from attestor.manifest._tar import manifest_from_tar

__all__ = [
    "LAYER_MEDIA_TYPES",
    "MEDIA_TYPE",
    "Change",
    "ChangeKind",
    "EntryType",
    "FileManifest",
    "FileState",
    "HashingReader",
    "LayerScan",
    "ManifestEntry",
    "ManifestLimits",
    "SnapshotCheck",
    "SnapshotState",
    "compare_manifests",
    "compare_snapshot",
    "inclusion_proof",
    "leaf_hash",
    "manifest_from_layer_blob",
    "manifest_from_snapshot",
    "manifest_from_tar",
    "open_decompressed",
    "root_from_inclusion_proof",
    "scan_snapshot",
]
