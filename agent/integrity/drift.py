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
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from attestor.manifest import (
    AttestedManifest,
    EntryType,
    FileManifest,
    ManifestEntry,
    compact_unhashed,
    pack_entry,
    unpack_entry,
)

__all__ = ["DriftFinding", "DriftKind", "MergedView", "find_drift", "merged_view"]

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


class MergedView(Mapping[str, ManifestEntry]):
    """The merged attested rootfs as path -> entry.

    Keeps, per path, which layer and which entry of it (one int), and the
    layers' compact manifests; entries are decoded on lookup, so the view
    adds only its own index to what the sweep already holds (issue 5, RSS).
    """

    __slots__ = ("_layers", "_where")

    def __init__(self, layers: Sequence[AttestedManifest], where: dict[str, int]) -> None:
        self._layers = tuple(layers)
        self._where = where

    def __getitem__(self, path: str) -> ManifestEntry:
        layer, index = divmod(self._where[path], _SPAN)
        return unpack_entry(path, self._layers[layer].record_at(index))

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, path: object) -> bool:
        return path in self._where


_SPAN = 2**32  # more entries than any layer may hold (ManifestLimits.max_entries)
_WHITEOUT = pack_entry(ManifestEntry("x", EntryType.WHITEOUT))[0]
_OPAQUE = pack_entry(ManifestEntry("x", EntryType.OPAQUE_DIR, mode=0, uid=0, gid=0))[0]
_DIR = pack_entry(ManifestEntry("x", EntryType.DIR, mode=0, uid=0, gid=0))[0]
_DIR_KINDS = frozenset({_OPAQUE, _DIR})


def _drop_under(view: dict[str, int], kinds: dict[str, int], path: str) -> None:
    prefix = path + "/"
    for p in [p for p in view if p.startswith(prefix)]:
        del view[p]
        kinds.pop(p, None)


def merged_view(layers: Sequence[FileManifest | AttestedManifest]) -> MergedView:
    """The rootfs the attested layers give (bottom layer first), as path -> entry.

    Whiteouts remove a path and its descendants; an opaque directory hides
    what lower layers had below it (OCI image-spec "Whiteouts").
    """
    compact = [m if isinstance(m, AttestedManifest) else compact_unhashed(m) for m in layers]
    view: dict[str, int] = {}
    dirs: dict[str, int] = {}  # the directories in view (a small share of paths)
    for number, layer in enumerate(compact):
        for index in range(len(layer)):
            path, kind = layer.path_at(index), layer.record_at(index)[0]
            if kind == _WHITEOUT:
                view.pop(path, None)
                dirs.pop(path, None)
                _drop_under(view, dirs, path)
                continue
            if kind == _OPAQUE or (path in dirs and kind not in _DIR_KINDS):
                _drop_under(view, dirs, path)
            view[path] = number * _SPAN + index
            if kind in _DIR_KINDS:
                dirs[path] = kind
            else:
                dirs.pop(path, None)
    return MergedView(compact, view)


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
        lower = attested_lower.get(entry.path)
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
        prefix = entry.path + "/"
        if any(p.startswith(prefix) for p in view):
            yield DriftFinding(
                entry.path, "drift-shadowed", "directory with attested content", "opaque_dir"
            )
    aspects = _aspects(lower, entry)
    if aspects:
        yield DriftFinding(
            entry.path, "drift-modified", _describe(lower), _describe(entry), aspects
        )
