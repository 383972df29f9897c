# SPDX-License-Identifier: Apache-2.0
"""Drift: what a running container changed in its writable layer (upperdir).

Reported apart from lower-layer tampering: drift is the workload's own doing
(or an intruder's inside the container), tampering happened on the host.

Against the merged view of the attested lower layers, an upperdir entry is:

* ``drift-deleted``: a 0/0 whiteout hiding an attested path;
* ``drift-shadowed``: an entry of another type over an attested path (a file
  replaced by a symlink, a directory by a file), or an opaque directory
  hiding an attested directory's contents;
* ``drift-modified``: the same type with other content, mode, owner, link
  target or capability (copy-up without a change is not drift);
* ``drift-new-executable``: a new regular file with an exec or set-id bit.

New non-executable files and new directories are the normal life of a
container (logs, pid files, runc's mount points) and are not reported.

:class:`UpperChecker` classifies an upperdir as it walks it (no observed
manifest is built) and hashes only the files a finding can depend on: those
over an attested path and new executables. A new non-executable file is no
drift whatever it holds, so it is neither hashed nor kept; the state kept
between checks (:class:`UpperState`) is a sorted path table and a 64-byte
record per hashed file, which keeps the agent's memory small with a
50,000-file upperdir.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.integrity._rehash import RehashSchedule
from agent.integrity._view import MergedView, merged_view
from agent.integrity.budget import Budget
from attestor.errors import Error

# The manifest's own walk and path table, so the upperdir is read exactly as
# a layer is (same symlink, device and UTF-8 rules).
from attestor.manifest import (
    FILE_KEY,
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    PathTable,
    SnapshotWalk,
    Unscannable,
    file_key,
    run_walk,
)

__all__ = [
    "DriftFinding",
    "DriftKind",
    "MergedView",
    "UpperChecker",
    "UpperScan",
    "UpperState",
    "find_drift",
    "merged_view",
]

DriftKind = Literal["drift-modified", "drift-shadowed", "drift-deleted", "drift-new-executable"]

_FILE_LIKE = frozenset({EntryType.FILE, EntryType.HARDLINK})
_DIRS = frozenset({EntryType.DIR, EntryType.OPAQUE_DIR})
_EXEC_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_ISUID | stat.S_ISGID


@dataclass(frozen=True)
class DriftFinding:
    """One drifted path; ``aspects`` lists what differs for ``drift-modified``."""

    path: str
    kind: DriftKind
    expected: str | None
    actual: str | None
    aspects: tuple[str, ...] = ()


def _lookup(view: Mapping[str, ManifestEntry], path: str) -> ManifestEntry | None:
    return view.lookup(path) if isinstance(view, MergedView) else view.get(path)


def _has_under(view: Mapping[str, ManifestEntry], directory: str) -> bool:
    if isinstance(view, MergedView):
        return view.has_under(directory)
    prefix = directory + "/"
    return any(p.startswith(prefix) for p in view)


def _aspects(lower: ManifestEntry, upper: ManifestEntry) -> tuple[str, ...]:
    out: list[str] = []
    if (lower.sha256, lower.size) != (upper.sha256, upper.size) or (
        lower.devmajor,
        lower.devminor,
    ) != (upper.devmajor, upper.devminor):
        out.append("content")
    if lower.mode != upper.mode:
        out.append("mode")
    if (lower.uid, lower.gid) != (upper.uid, upper.gid):
        out.append("owner")
    # A hardlink's ``link`` names its group's first path, which the rw layer
    # does not preserve; only symlink targets are compared.
    if lower.type is EntryType.SYMLINK and lower.link != upper.link:
        out.append("link")
    if lower.capability != upper.capability:
        out.append("xattr")
    return tuple(out)


def _same_kind(a: ManifestEntry, b: ManifestEntry) -> bool:
    if a.type in _FILE_LIKE:
        return b.type in _FILE_LIKE
    if a.type in _DIRS:
        return b.type in _DIRS
    return a.type == b.type


def _describe(entry: ManifestEntry) -> str:
    if entry.type in _FILE_LIKE:
        return f"{entry.type} sha256:{entry.sha256} mode={entry.mode:04o}"
    if entry.type is EntryType.SYMLINK:
        return f"symlink -> {entry.link}"
    return str(entry.type)


def find_drift(
    upper: FileManifest, attested_lower: Mapping[str, ManifestEntry]
) -> list[DriftFinding]:
    """Classify every upperdir entry against the merged attested lower layers.

    Args:
        upper: the manifest of the container's upperdir (``scan_snapshot``).
        attested_lower: :func:`merged_view` of the image's attested manifests.

    Returns:
        The findings in path order.
    """
    findings: list[DriftFinding] = []
    for entry in upper.entries:
        lower = _lookup(attested_lower, entry.path)
        findings.extend(_classify(entry, lower, attested_lower))
    return findings


def _classify(
    entry: ManifestEntry, lower: ManifestEntry | None, view: Mapping[str, ManifestEntry]
) -> Iterable[DriftFinding]:
    if entry.type is EntryType.WHITEOUT:
        if lower is not None:
            yield DriftFinding(entry.path, "drift-deleted", _describe(lower), None)
        return
    if lower is None:
        if entry.type in _FILE_LIKE and (entry.mode or 0) & _EXEC_BITS:
            yield DriftFinding(entry.path, "drift-new-executable", None, _describe(entry))
        return
    if not _same_kind(lower, entry):
        yield DriftFinding(entry.path, "drift-shadowed", _describe(lower), _describe(entry))
        return
    if entry.type is EntryType.OPAQUE_DIR and lower.type in _DIRS:
        if _has_under(view, entry.path):
            yield DriftFinding(
                entry.path, "drift-shadowed", "directory with attested content", "opaque_dir"
            )
    aspects = _aspects(lower, entry)
    if aspects:
        yield DriftFinding(
            entry.path, "drift-modified", _describe(lower), _describe(entry), aspects
        )


# The manifest's change key (ino, size, mtime_ns, ctime_ns), then the raw
# sha256; a capability xattr, rare, is kept apart.
_RECORD = struct.Struct(FILE_KEY.format + "32s")
_R = _RECORD.size
_KEY_END = FILE_KEY.size


class UpperState:
    """The files one drift check hashed in an upperdir, for the next check.

    About 100 bytes per file (path, NUL, record) where a ``dict[str, bytes]``
    took about 200; and only hashed files are kept at all.

    Args:
        paths: the UTF-8 path of each file, in walk order.
        records: lstat key + raw sha256 of each file (``_R`` bytes), same order.
        caps: position in ``paths`` -> capability xattr, for the few that have one.
    """

    __slots__ = ("_caps", "_paths", "_records")

    def __init__(self, paths: list[bytes], records: bytearray, caps: dict[int, bytes]) -> None:
        # The path table bisects in UTF-8 byte order. Sorting positions, not
        # (path, record) pairs, keeps the peak near the state's own size.
        order = sorted(range(len(paths)), key=paths.__getitem__)
        self._paths = PathTable()
        self._records = bytearray(len(records))
        self._caps: dict[int, bytes] = {}
        for index, at in enumerate(order):
            self._paths.append(paths[at])
            self._records[index * _R : (index + 1) * _R] = records[at * _R : (at + 1) * _R]
            if at in caps:
                self._caps[index] = caps[at]
        self._paths.finish()

    def __len__(self) -> int:
        return len(self._paths)

    def digest(self, path: bytes, key: bytes) -> bytes | None:
        """The raw sha256 + capability kept for ``path``, if its lstat key is still ``key``."""
        index = self._paths.find(path)
        if index is None:
            return None
        at = index * _R
        if self._records[at : at + _KEY_END] != key:
            return None
        return bytes(self._records[at + _KEY_END : at + _R]) + self._caps.get(index, b"")


class _DriftWalk(SnapshotWalk):
    """One walk of an upperdir; each entry is classified as the walk yields it."""

    def __init__(
        self,
        root: Path,
        view: Mapping[str, ManifestEntry],
        previous: UpperState | None,
        limits: ManifestLimits,
    ) -> None:
        # Not open_first: most files of an upperdir are never read, and
        # opening each one to fstat it would cost a syscall per file.
        super().__init__(root, None, limits, open_first=False)
        self.view = view
        self.prior = previous
        # The next state, in walk order (UpperState sorts it).
        self.paths: list[bytes] = []
        self.records = bytearray()
        self.caps: dict[int, bytes] = {}
        self.findings: list[DriftFinding] = []
        self.files = 0

    def regular_file(self, rel: str, name: str, dir_fd: int, st: os.stat_result, fd: int) -> None:
        self.files += 1
        # A new non-executable file cannot be drift: no hash needed. A file
        # with more links takes the general path: its group decides whether
        # it is reported as a file or a hardlink.
        # Its bytes are not counted against the content cap either: they are
        # never read, and a container writing a large log must not make its
        # upperdir uncheckable.
        if st.st_nlink == 1 and not st.st_mode & _EXEC_BITS and rel not in self.view:
            return
        super().regular_file(rel, name, dir_fd, st, fd)

    def reuse_digest(self, rel: str, st: os.stat_result) -> bytes | None:
        if self.prior is None:
            return None
        path, key = rel.encode("utf-8"), file_key(st)
        digest = self.prior.digest(path, key)
        if digest is not None:
            self._store(path, key, digest)
        return digest

    def keep_digest(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        self._store(rel.encode("utf-8"), file_key(st), digest)

    def _store(self, path: bytes, key: bytes, digest: bytes) -> None:
        if len(digest) > _R - _KEY_END:
            self.caps[len(self.paths)] = digest[_R - _KEY_END :]
        self.paths.append(path)
        self.records += key
        self.records += digest[: _R - _KEY_END]

    def next_state(self) -> UpperState:
        """The state for the next check."""
        return UpperState(self.paths, self.records, self.caps)

    def emit(self, entry: ManifestEntry) -> None:
        self.findings.extend(_classify(entry, _lookup(self.view, entry.path), self.view))


@dataclass(frozen=True)
class UpperScan:
    """One drift check of an upperdir.

    Attributes:
        findings: as :func:`find_drift` gives for the upperdir's manifest.
        files: regular files seen.
        hashed: bytes read and hashed.
        full: no previous state was used.
        unscannable: what the walk could not check (each is a violation; the
            findings cover the rest).
    """

    findings: tuple[DriftFinding, ...]
    files: int
    hashed: int
    full: bool
    unscannable: tuple[Unscannable, ...] = ()


class UpperChecker:
    """Checks upperdirs for drift; keeps per-directory state between checks.

    Args:
        full_rehash_every: every N-th check of a directory hashes every file
            it needs (1 = always; the first check always does).
        budget: hashing budget charged after each check.
        limits: manifest caps for the walk.
    """

    def __init__(
        self,
        *,
        full_rehash_every: int = 10,
        budget: Budget | None = None,
        limits: ManifestLimits | None = None,
    ) -> None:
        # Raises ConfigError (via RehashSchedule) when full_rehash_every < 1.
        self._schedule: RehashSchedule[UpperState] = RehashSchedule(full_rehash_every)
        self._budget = budget or Budget()
        self._limits = limits or ManifestLimits()

    def check(self, upperdir: Path, view: Mapping[str, ManifestEntry]) -> UpperScan:
        """Classify ``upperdir`` against ``view`` (:func:`merged_view`).

        Never raises for what the directory holds, as
        :meth:`agent.integrity.layers.LayerChecker.check`: what the walk
        cannot read (a name that is not UTF-8, too many entries...) is in the
        scan's ``unscannable`` and the rest is classified; a walk that fails
        as a whole (the upperdir cannot be opened) is one ``unscannable``
        record with no path, and no state is kept.
        """
        state, full = self._schedule.next(upperdir)
        previous = None if full else state
        walk = _DriftWalk(upperdir, view, previous, self._limits)
        try:
            run_walk(walk)
        except Error as e:
            # Not checked at all: a finding, never a clean upperdir.
            return UpperScan((), 0, 0, False, (Unscannable(None, e.message),))
        self._schedule.record(upperdir, walk.next_state())
        self._budget.spend(walk.hashed)
        walk.findings.sort(key=lambda f: f.path)  # stable: a path's findings keep their order
        return UpperScan(
            tuple(walk.findings),
            walk.files,
            walk.hashed,
            previous is None,
            tuple(walk.unscannable),
        )

    def forget(self, upperdir: Path) -> None:
        """Drop the state of a directory that is no longer tracked."""
        self._schedule.forget(upperdir)

    def tracked(self) -> frozenset[Path]:
        """Directories with state."""
        return self._schedule.directories()
