# SPDX-License-Identifier: Apache-2.0
"""Check one lower layer's snapshot directory against its attested manifest.

The check is incremental (``compare_snapshot`` re-hashes only files whose
inode, size, mtime, ctime, mode or owner moved) with a full re-hash every N
checks, which catches a write that restored the old timestamps on a
filesystem where ctime is not trustworthy (issue 5, item 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.integrity.budget import Budget
from attestor.errors import ConfigError, InvalidInput
from attestor.manifest import (
    AttestedManifest,
    Change,
    FileManifest,
    FileState,
    LayerState,
    ManifestLimits,
    SnapshotState,
    compact_unhashed,
    compare_snapshot,
    scan_snapshot,
)

__all__ = ["LayerCheck", "LayerChecker", "bytes_hashed"]


@dataclass(frozen=True)
class LayerCheck:
    """The result of checking one snapshot directory.

    Attributes:
        snapshot_dir: the directory scanned.
        changes: differences from the attested manifest, in path order.
        files_checked: regular files seen.
        bytes_hashed: bytes re-hashed by this scan.
        full_rehash: every file was hashed (no state reused).
        error: why the scan failed, else None.
    """

    snapshot_dir: Path
    changes: tuple[Change, ...]
    files_checked: int
    bytes_hashed: int
    full_rehash: bool
    error: str | None = None


def bytes_hashed(previous: SnapshotState | None, current: SnapshotState) -> int:
    """Bytes hashed by a scan: ``scan_snapshot`` reuses the very state value it kept."""
    prev = previous or {}
    return sum(
        FileState.unpack(st).size for path, st in current.items() if prev.get(path) is not st
    )


@dataclass
class _Tracked:
    # A lower layer keeps a LayerState (check), an upperdir a SnapshotState (scan).
    state: SnapshotState | LayerState | None
    checks: int
    # The compact form of a FileManifest given to check(), made once: the
    # state is indexed by it.
    source: FileManifest | None = None
    compact: AttestedManifest | None = None


class LayerChecker:
    """Keeps per-directory scan state between sweeps.

    Args:
        full_rehash_every: every N-th check of a directory hashes every file
            (1 = always; the first check always does).
        budget: hashing budget charged after each scan.
        limits: manifest caps for the scan.
    """

    def __init__(
        self,
        *,
        full_rehash_every: int = 10,
        budget: Budget | None = None,
        limits: ManifestLimits | None = None,
    ) -> None:
        if full_rehash_every < 1:
            raise ConfigError(f"full_rehash_every must be >= 1, got {full_rehash_every}")
        self._every = full_rehash_every
        self._budget = budget or Budget()
        self._limits = limits
        self._tracked: dict[Path, _Tracked] = {}

    def scan(self, snapshot_dir: Path) -> tuple[FileManifest, int, bool]:
        """Scan ``snapshot_dir`` (incremental unless a full re-hash is due).

        Returns:
            The observed manifest, the bytes hashed, and whether it was a full re-hash.

        Raises:
            InvalidInput: the directory cannot be scanned (see ``scan_snapshot``).
            TooLarge: a manifest cap was exceeded.
        """
        tracked, full = self._due(snapshot_dir)
        previous = None if full or not isinstance(tracked.state, dict) else tracked.state
        try:
            observed, state = scan_snapshot(snapshot_dir, previous, limits=self._limits)
        except InvalidInput:
            # A file can vanish between readdir and stat in a live directory;
            # one retry separates a race from a persistent problem.
            observed, state = scan_snapshot(snapshot_dir, previous, limits=self._limits)
        hashed = bytes_hashed(previous, state)
        self._tracked[snapshot_dir] = _Tracked(state, tracked.checks + 1)
        self._budget.spend(hashed)
        return observed, hashed, previous is None

    def check(self, snapshot_dir: Path, attested: FileManifest | AttestedManifest) -> LayerCheck:
        """Compare ``snapshot_dir`` with ``attested`` (no observed manifest is built).

        Never raises for I/O: a failed scan is a check with ``error``.

        Raises:
            TooLarge: a manifest cap was exceeded.
        """
        tracked, full = self._due(snapshot_dir)
        source = attested if isinstance(attested, FileManifest) else None
        compact: AttestedManifest
        if isinstance(attested, AttestedManifest):
            compact = attested
        elif tracked.source is attested and tracked.compact is not None:
            compact = tracked.compact
        else:
            compact = compact_unhashed(attested)
        previous = None if full or not isinstance(tracked.state, LayerState) else tracked.state
        try:
            try:
                result = compare_snapshot(snapshot_dir, compact, previous, limits=self._limits)
            except InvalidInput:
                # As in scan(): one retry separates a race from a lasting problem.
                result = compare_snapshot(snapshot_dir, compact, previous, limits=self._limits)
        except InvalidInput as e:
            return LayerCheck(snapshot_dir, (), 0, 0, False, e.message)
        self._tracked[snapshot_dir] = _Tracked(
            result.state, tracked.checks + 1, source, compact if source is not None else None
        )
        self._budget.spend(result.hashed)
        return LayerCheck(snapshot_dir, result.changes, result.files, result.hashed, result.full)

    def _due(self, snapshot_dir: Path) -> tuple[_Tracked, bool]:
        tracked = self._tracked.get(snapshot_dir) or _Tracked(None, 0)
        return tracked, tracked.state is None or tracked.checks % self._every == 0

    def forget(self, snapshot_dir: Path) -> None:
        """Drop the state of a directory that is no longer tracked."""
        self._tracked.pop(snapshot_dir, None)

    def tracked(self) -> frozenset[Path]:
        """Directories with state."""
        return frozenset(self._tracked)
