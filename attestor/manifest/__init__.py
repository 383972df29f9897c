# SPDX-License-Identifier: Apache-2.0
"""The layer file manifest: from a tar stream, from a snapshot directory,
its canonical serialization, tree digest and comparison.

The format is specified in ``docs/layer-manifest.md``. The server computes it
with :func:`manifest_from_layer_blob` (or :func:`manifest_from_tar`); the agent
recomputes it with :func:`scan_snapshot` and compares with
:func:`compare_manifests`. For an untouched layer both give equal bytes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from attestor.manifest._compact import (
    AttestedManifest,
    PathTable,
    compact_unhashed,
    pack_entry,
    unpack_entry,
)
from attestor.manifest._compare import Change, ChangeKind, compare_manifests
from attestor.manifest._dirfd import DirChain, open_root
from attestor.manifest._filekey import FILE_KEY, file_key
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._merkle import root_from_inclusion_proof
from attestor.manifest._model import (
    LAYER_READING_VERSION,
    MEDIA_TYPE,
    EntryType,
    FileManifest,
    ManifestEntry,
)
from attestor.manifest._snapshot import (
    FileState,
    SnapshotState,
    SnapshotWalk,
    manifest_from_snapshot,
    run_walk,
    scan_snapshot,
)
from attestor.manifest._sweep import LayerState, SnapshotCheck, compare_snapshot
from attestor.manifest._unscannable import Unscannable

if TYPE_CHECKING:
    from attestor.manifest._stream import LayerScan, ScanBudgetExceeded, manifest_from_layer_blob
    from attestor.manifest._tar import manifest_from_tar

# The tar side (our tar reader, gzip, zstandard) is the server's; the agent, which
# only compares snapshots, does not load it (it would only add to its memory).
_LAZY = {
    "LayerScan": "attestor.manifest._stream",
    "ScanBudgetExceeded": "attestor.manifest._stream",
    "manifest_from_layer_blob": "attestor.manifest._stream",
    "manifest_from_tar": "attestor.manifest._tar",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "FILE_KEY",
    "LAYER_READING_VERSION",
    "AttestedManifest",
    "MEDIA_TYPE",
    "Change",
    "ChangeKind",
    "DirChain",
    "EntryType",
    "FileManifest",
    "FileState",
    "LayerScan",
    "LayerState",
    "ManifestEntry",
    "ManifestLimits",
    "PathTable",
    "ScanBudgetExceeded",
    "SnapshotCheck",
    "SnapshotState",
    "SnapshotWalk",
    "Unscannable",
    "compare_manifests",
    "compact_unhashed",
    "compare_snapshot",
    "file_key",
    "manifest_from_layer_blob",
    "manifest_from_snapshot",
    "manifest_from_tar",
    "open_root",
    "pack_entry",
    "root_from_inclusion_proof",
    "run_walk",
    "scan_snapshot",
    "unpack_entry",
]
