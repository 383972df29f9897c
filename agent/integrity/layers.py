# SPDX-License-Identifier: Apache-2.0
"""Check one lower layer's snapshot directory against its attested manifest.

The check is incremental (``compare_snapshot`` re-hashes only files whose
inode, size, mtime, ctime, mode or owner moved) with a full re-hash every N
checks, which catches a write that restored the old timestamps on a
filesystem where ctime is not trustworthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.integrity._rehash import RehashSchedule
from agent.integrity.budget import Budget
from attestor.errors import Error
from attestor.manifest import (
    AttestedManifest,
    Change,
    FileManifest,
    LayerState,
    ManifestLimits,
    Unscannable,
    compact_unhashed,
    compare_snapshot,
)

__all__ = ["LayerCheck", "LayerChecker"]


@dataclass(frozen=True)
class LayerCheck:
    """The result of checking one snapshot directory.

    Attributes:
        snapshot_dir: the directory scanned.
        changes: differences from the attested manifest, in path order.
        files_checked: regular files seen.
        bytes_hashed: bytes re-hashed by this scan.
        full_rehash: every file was hashed (no state reused).
        error: never set by :class:`LayerChecker` (what it cannot check is in
            ``unscannable``); kept for the sweep's per-check report field.
        unscannable: what the scan could not check; each is a violation, and
            ``changes`` still covers the rest of the layer.
    """

    snapshot_dir: Path
    changes: tuple[Change, ...]
    files_checked: int
    bytes_hashed: int
    full_rehash: bool
    error: str | None = None
    unscannable: tuple[Unscannable, ...] = ()


@dataclass(frozen=True)
class _Kept:
    state: LayerState
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
        # Raises ConfigError (via RehashSchedule) when full_rehash_every < 1.
        self._schedule: RehashSchedule[_Kept] = RehashSchedule(full_rehash_every)
        self._budget = budget or Budget()
        self._limits = limits

    def check(self, snapshot_dir: Path, attested: FileManifest | AttestedManifest) -> LayerCheck:
        """Compare ``snapshot_dir`` with ``attested`` (no observed manifest is built).

        Never raises for what the directory holds, as
        :meth:`agent.integrity.drift.UpperChecker.check`: what cannot be read,
        or a cap that stops the walk, is in the check's ``unscannable``; a walk
        that fails as a whole (the directory cannot be opened) is one
        ``unscannable`` record with no path, and no state is kept.
        """
        kept, full = self._schedule.next(snapshot_dir)
        source = attested if isinstance(attested, FileManifest) else None
        compact: AttestedManifest
        if isinstance(attested, AttestedManifest):
            compact = attested
        elif kept is not None and kept.source is attested and kept.compact is not None:
            compact = kept.compact
        else:
            compact = compact_unhashed(attested)
        previous = None if full or kept is None else kept.state
        try:
            result = compare_snapshot(snapshot_dir, compact, previous, limits=self._limits)
        except Error as e:
            # The walk records what it cannot read and goes on; a failure of
            # the walk itself leaves the whole layer unchecked: that is a
            # finding, never a clean layer.
            return LayerCheck(
                snapshot_dir, (), 0, 0, False, unscannable=(Unscannable(None, e.message),)
            )
        self._schedule.record(
            snapshot_dir, _Kept(result.state, source, compact if source is not None else None)
        )
        self._budget.spend(result.hashed)
        return LayerCheck(
            snapshot_dir,
            result.changes,
            result.files,
            result.hashed,
            result.full,
            unscannable=result.unscannable,
        )

    def forget(self, snapshot_dir: Path) -> None:
        """Drop the state of a directory that is no longer tracked."""
        self._schedule.forget(snapshot_dir)

    def tracked(self) -> frozenset[Path]:
        """Directories with state."""
        return self._schedule.directories()
