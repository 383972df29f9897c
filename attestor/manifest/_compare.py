# SPDX-License-Identifier: Apache-2.0
"""Compare an attested manifest with an observed one, path by path."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from attestor.manifest._model import EntryType, FileManifest, ManifestEntry

__all__ = ["Change", "ChangeKind", "compare_manifests", "diff_entries"]

#: The kinds of change the agent reports in a violation, plus ``type``.
ChangeKind = Literal["content", "mode", "owner", "link", "added", "removed", "xattr", "type"]


@dataclass(frozen=True)
class Change:
    """One difference at one path.

    Attributes:
        path: the manifest path.
        kind: what differs.
        expected: the attested value as text (None when absent).
        actual: the observed value as text (None when absent).
    """

    path: str
    kind: ChangeKind
    expected: str | None
    actual: str | None


def _describe(entry: ManifestEntry) -> str:
    return str(entry.type)


def _owner(entry: ManifestEntry) -> str | None:
    return None if entry.uid is None else f"{entry.uid}:{entry.gid}"


def _content(entry: ManifestEntry) -> str | None:
    if entry.sha256 is not None:
        return f"sha256:{entry.sha256} size={entry.size}"
    if entry.devmajor is not None:
        return f"{entry.devmajor}:{entry.devminor}"
    return None


def _mode(entry: ManifestEntry) -> str | None:
    return None if entry.mode is None else format(entry.mode, "04o")


def _cap(entry: ManifestEntry) -> str | None:
    return None if entry.capability is None else base64.b64encode(entry.capability).decode()


_FILE_LIKE = frozenset({EntryType.FILE, EntryType.HARDLINK})


def _same_type(a: ManifestEntry, b: ManifestEntry) -> bool:
    # A file that gained or lost a hardlink partner is still a file; the lost
    # link shows up as kind "link".
    return a.type == b.type or (a.type in _FILE_LIKE and b.type in _FILE_LIKE)


def diff_entries(expected: ManifestEntry, actual: ManifestEntry) -> list[Change]:
    """The changes between two entries at the same path (a ``type`` change alone)."""
    path = expected.path
    if not _same_type(expected, actual):
        return [Change(path, "type", _describe(expected), _describe(actual))]
    changes: list[Change] = []
    checks: tuple[tuple[ChangeKind, str | None, str | None], ...] = (
        ("content", _content(expected), _content(actual)),
        ("mode", _mode(expected), _mode(actual)),
        ("owner", _owner(expected), _owner(actual)),
        ("link", expected.link, actual.link),
        ("xattr", _cap(expected), _cap(actual)),
    )
    for kind, want, got in checks:
        if want != got:
            changes.append(Change(path, kind, want, got))
    return changes


def compare_manifests(attested: FileManifest, observed: FileManifest) -> list[Change]:
    """List every difference between two manifests, in path order.

    A path whose type differs yields one ``type`` change and nothing else; a
    path present on one side only yields ``removed`` or ``added``. Descendants
    of an added or removed directory are listed individually.

    Returns:
        The changes; empty when the manifests are equal.
    """
    changes: list[Change] = []
    for entry in attested.entries:
        seen = observed.get(entry.path)
        if seen is None:
            changes.append(Change(entry.path, "removed", _describe(entry), None))
        else:
            changes.extend(diff_entries(entry, seen))
    for entry in observed.entries:
        if attested.get(entry.path) is None:
            changes.append(Change(entry.path, "added", None, _describe(entry)))
    changes.sort(key=lambda c: c.path)
    return changes
