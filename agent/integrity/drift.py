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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from attestor.manifest import EntryType, FileManifest, ManifestEntry

__all__ = ["DriftFinding", "DriftKind", "find_drift", "merged_view"]

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


def _drop_under(view: dict[str, ManifestEntry], path: str) -> None:
    prefix = path + "/"
    for p in [p for p in view if p.startswith(prefix)]:
        del view[p]


def merged_view(layers: Sequence[FileManifest]) -> dict[str, ManifestEntry]:
    """The rootfs the attested layers give (bottom layer first), as path -> entry.

    Whiteouts remove a path and its descendants; an opaque directory hides
    what lower layers had below it (OCI image-spec "Whiteouts").
    """
    view: dict[str, ManifestEntry] = {}
    for layer in layers:
        for entry in layer.entries:
            if entry.type is EntryType.WHITEOUT:
                view.pop(entry.path, None)
                _drop_under(view, entry.path)
                continue
            old = view.get(entry.path)
            if entry.type is EntryType.OPAQUE_DIR or (
                old is not None and old.type in _DIRS and entry.type not in _DIRS
            ):
                _drop_under(view, entry.path)
            view[entry.path] = entry
    return view


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


def find_drift(upper: FileManifest, attested_lower: dict[str, ManifestEntry]) -> list[DriftFinding]:
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
    entry: ManifestEntry, lower: ManifestEntry | None, view: dict[str, ManifestEntry]
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
