# SPDX-License-Identifier: Apache-2.0
"""Drift classification of an upperdir against the merged attested layers."""

from __future__ import annotations

import hashlib

from agent.integrity.drift import find_drift, merged_view
from attestor.manifest import EntryType, FileManifest, ManifestEntry

E = ManifestEntry


def d(path: str, mode: int = 0o755) -> ManifestEntry:
    return E(path, EntryType.DIR, mode=mode, uid=0, gid=0)


def f(path: str, data: bytes = b"x", mode: int = 0o644, uid: int = 0) -> ManifestEntry:
    return E(path, EntryType.FILE, mode=mode, uid=uid, gid=0, size=len(data),
             sha256=hashlib.sha256(data).hexdigest())  # fmt: skip


def m(*entries: ManifestEntry) -> FileManifest:
    return FileManifest.from_entries(entries)


BASE = m(d("bin"), f("bin/sh", b"sh", 0o755), d("etc"), f("etc/a"), f("etc/b"), d("srv"),
         f("srv/x"), E("etc/l", EntryType.SYMLINK, uid=0, gid=0, link="a"))  # fmt: skip


def test_merged_view_applies_whiteouts_and_opaque_dirs() -> None:
    top = m(d("etc"), E("etc/b", EntryType.WHITEOUT),
            E("srv", EntryType.OPAQUE_DIR, mode=0o755, uid=0, gid=0), f("srv/y"))  # fmt: skip
    view = merged_view([BASE, top])
    assert "etc/b" not in view and "etc/a" in view
    assert "srv/x" not in view and "srv/y" in view
    assert view["srv"].type is EntryType.OPAQUE_DIR


def test_each_drift_kind() -> None:
    view = merged_view([BASE])
    upper = m(
        d("etc"),
        f("etc/a", b"changed"),  # modified
        E("etc/b", EntryType.WHITEOUT),  # deleted
        E("etc/l", EntryType.SYMLINK, uid=0, gid=0, link="/etc/shadow"),  # modified (link)
        d("srv"),
        E("srv/x", EntryType.SYMLINK, uid=0, gid=0, link="/bin/sh"),  # shadowed (type)
        f("srv/new.sh", b"#!", 0o755),  # new executable
        f("srv/log.txt", b"log"),  # new, not executable: not drift
        E("srv/gone", EntryType.WHITEOUT),  # whiteout of nothing attested: not drift
    )
    found = {(x.path, x.kind, x.aspects) for x in find_drift(upper, view)}
    assert found == {
        ("etc/a", "drift-modified", ("content",)),
        ("etc/b", "drift-deleted", ()),
        ("etc/l", "drift-modified", ("link",)),
        ("srv/x", "drift-shadowed", ()),
        ("srv/new.sh", "drift-new-executable", ()),
    }


def test_copy_up_without_change_is_not_drift_but_chmod_and_chown_are() -> None:
    view = merged_view([BASE])
    assert find_drift(m(d("etc"), f("etc/a")), view) == []
    found = find_drift(m(d("bin"), f("bin/sh", b"sh", 0o4755, uid=5)), view)
    assert [(x.path, x.kind, x.aspects) for x in found] == [
        ("bin/sh", "drift-modified", ("mode", "owner"))
    ]


def test_setuid_new_file_is_executable_and_opaque_dir_shadows() -> None:
    view = merged_view([BASE])
    upper = m(E("srv", EntryType.OPAQUE_DIR, mode=0o755, uid=0, gid=0), f("srv/s", b"", 0o4000))
    found = {(x.path, x.kind) for x in find_drift(upper, view)}
    assert found == {("srv", "drift-shadowed"), ("srv/s", "drift-new-executable")}
