# SPDX-License-Identifier: Apache-2.0
"""compare_manifests reports each kind the agent needs."""

from __future__ import annotations

import dataclasses

from attestor.manifest import Change, EntryType, FileManifest, ManifestEntry, compare_manifests

H1, H2 = "1" * 64, "2" * 64
CAP = b"\x01\x00\x00\x02"


def manifest() -> FileManifest:
    return FileManifest.from_entries(
        [
            ManifestEntry("bin", EntryType.DIR, mode=0o755, uid=0, gid=0),
            ManifestEntry("bin/a", EntryType.FILE, mode=0o755, uid=0, gid=0, size=1, sha256=H1),
            ManifestEntry(
                "bin/b",
                EntryType.HARDLINK,
                mode=0o755,
                uid=0,
                gid=0,
                size=1,
                sha256=H1,
                link="bin/a",
            ),
            ManifestEntry("bin/sh", EntryType.SYMLINK, uid=0, gid=0, link="a"),
            ManifestEntry(
                "bin/ping",
                EntryType.FILE,
                mode=0o755,
                uid=0,
                gid=0,
                size=1,
                sha256=H2,
                capability=CAP,
            ),
            ManifestEntry("gone", EntryType.WHITEOUT),
        ]
    )


def replace(m: FileManifest, path: str, **changes: object) -> FileManifest:
    return FileManifest.from_entries(
        dataclasses.replace(e, **changes) if e.path == path else e
        for e in m.entries  # type: ignore[arg-type]
    )


def test_equal_manifests_have_no_changes() -> None:
    assert compare_manifests(manifest(), manifest()) == []


def test_every_kind() -> None:
    m = manifest()
    assert compare_manifests(m, replace(m, "bin/ping", sha256=H1, size=2)) == [
        Change("bin/ping", "content", f"sha256:{H2} size=1", f"sha256:{H1} size=2")
    ]
    assert compare_manifests(m, replace(m, "bin/ping", mode=0o4755)) == [
        Change("bin/ping", "mode", "0755", "4755")
    ]
    assert compare_manifests(m, replace(m, "bin/ping", uid=1000)) == [
        Change("bin/ping", "owner", "0:0", "1000:0")
    ]
    assert compare_manifests(m, replace(m, "bin/sh", link="/tmp/evil")) == [
        Change("bin/sh", "link", "a", "/tmp/evil")
    ]
    assert compare_manifests(m, replace(m, "bin/ping", capability=None)) == [
        Change("bin/ping", "xattr", "AQAAAg==", None)
    ]
    assert compare_manifests(
        m, replace(m, "gone", type=EntryType.DIR, mode=0o755, uid=0, gid=0)
    ) == [Change("gone", "type", "whiteout", "dir")]
    added = FileManifest.from_entries(
        [
            *m.entries,
            ManifestEntry("bin/x", EntryType.FILE, mode=0o755, uid=0, gid=0, size=0, sha256=H1),
        ]
    )
    assert compare_manifests(m, added) == [Change("bin/x", "added", None, "file")]
    removed = FileManifest.from_entries(e for e in m.entries if e.path != "bin/sh")
    assert compare_manifests(m, removed) == [Change("bin/sh", "removed", "symlink", None)]


def test_broken_hardlink_is_a_link_change_not_a_type_change() -> None:
    m = manifest()
    broken = replace(m, "bin/b", type=EntryType.FILE, link=None, sha256=H2)
    assert compare_manifests(m, broken) == [
        Change("bin/b", "content", f"sha256:{H1} size=1", f"sha256:{H2} size=1"),
        Change("bin/b", "link", "bin/a", None),
    ]
