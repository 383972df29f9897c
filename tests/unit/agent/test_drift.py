# SPDX-License-Identifier: Apache-2.0
"""Drift classification of an upperdir against the merged attested layers."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

from agent.integrity.drift import DriftFinding, UpperChecker, find_drift, merged_view
from attestor.manifest import (
    EntryType,
    FileManifest,
    ManifestEntry,
    manifest_from_snapshot,
    scan_snapshot,
)

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


def _lower(root: Path) -> Path:
    for rel, data, mode in [("bin/sh", b"sh", 0o755), ("etc/a", b"a", 0o644),
                            ("etc/b", b"b", 0o644), ("etc/c", b"c", 0o644),
                            ("srv/x", b"x", 0o644), ("opt/f", b"f", 0o644)]:  # fmt: skip
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)
    os.symlink("a", root / "etc/l")
    return root


def _upper(root: Path) -> Path:
    for rel in ["bin", "etc", "srv", "logs", "opt"]:
        (root / rel).mkdir(parents=True)
    (root / "etc/a").write_bytes(b"a")  # copy-up, unchanged: not drift
    (root / "etc/b").write_bytes(b"changed")  # modified
    (root / "bin/sh").write_bytes(b"sh")
    os.chmod(root / "bin/sh", 0o4755)  # noqa: S103 - modified (mode)
    # and a capability (v2: effective, cap_net_raw permitted): kept with the digest
    os.setxattr(
        root / "bin/sh", "security.capability", struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
    )
    os.mknod(root / "etc/c", stat.S_IFCHR, os.makedev(0, 0))  # deleted (whiteout)
    os.symlink("/etc/shadow", root / "etc/l")  # modified (link)
    os.setxattr(root / "srv", "trusted.overlay.opaque", b"y")  # shadows srv/x
    (root / "opt/f").mkdir()  # shadowed (a file became a directory)
    (root / "logs/new.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "logs/new.sh", 0o755)  # noqa: S103 - new executable
    os.link(root / "logs/new.sh", root / "logs/new2.sh")  # and a hardlink of it
    os.link(root / "etc/b", root / "logs/b-link")  # a link over no attested path
    for i in range(20):  # the normal life of a container: not hashed, not kept
        (root / f"logs/{i}.log").write_bytes(b"log line\n" * 100)
    return root


def test_the_upper_checker_finds_what_find_drift_finds(tmp_path: Path) -> None:
    # The walk classifies entries as it goes; the findings must equal those
    # of the manifest route (scan_snapshot + find_drift), first and
    # incremental checks alike.
    view = merged_view([manifest_from_snapshot(_lower(tmp_path / "lower"))])
    upper = _upper(tmp_path / "upper")
    checker = UpperChecker(full_rehash_every=100)

    def expected() -> tuple[DriftFinding, ...]:
        return tuple(find_drift(scan_snapshot(upper)[0], view))

    first = checker.check(upper, view)
    assert first.full and first.findings == expected()
    assert [x.aspects for x in first.findings if x.path == "bin/sh"] == [("mode", "xattr")]
    assert {(x.path, x.kind) for x in first.findings} == {
        ("bin/sh", "drift-modified"), ("etc/b", "drift-modified"), ("etc/c", "drift-deleted"),
        ("etc/l", "drift-modified"), ("opt/f", "drift-shadowed"), ("srv", "drift-shadowed"),
        ("logs/new.sh", "drift-new-executable"), ("logs/new2.sh", "drift-new-executable"),
    }  # fmt: skip
    assert first.files == 26  # every regular file is seen ...
    assert first.hashed == len(b"a" + b"changed" * 2 + b"sh" + b"#!/bin/sh\n" * 2)  # ... not read
    again = checker.check(upper, view)
    assert (again.full, again.hashed, again.findings) == (False, 0, first.findings)
    (upper / "etc/a").write_bytes(b"now changed")
    (upper / "logs/0.log").write_bytes(b"rotated")
    os.chmod(upper / "logs/1.log", 0o755)  # noqa: S103 - becomes a new executable
    third = checker.check(upper, view)
    assert not third.full and third.findings == expected()
    assert third.hashed == len(b"now changed") + len(b"log line\n" * 100)
    assert {x.path for x in third.findings} - {x.path for x in first.findings} == {
        "etc/a",
        "logs/1.log",
    }


def test_upper_checker_rehashes_in_full_every_n_checks(tmp_path: Path) -> None:
    view = merged_view([manifest_from_snapshot(_lower(tmp_path / "lower"))])
    upper = _upper(tmp_path / "upper")
    checker = UpperChecker(full_rehash_every=2)
    assert [checker.check(upper, view).full for _ in range(4)] == [True, False, True, False]
    checker.forget(upper)
    assert checker.tracked() == frozenset() and checker.check(upper, view).full


def test_the_compact_view_answers_as_a_dict_would() -> None:
    # More paths than one block of the path table (16), non-ASCII included.
    entries = [d("a"), *(f(f"a/{i:03d}") for i in range(100)), d("b"), d("b/c"), f("b/c/x"),
               d("bb"), f("bb/y"), d("é"), f("é/ü")]  # fmt: skip
    top = m(d("a"), E("a/050", EntryType.WHITEOUT), E("bb", EntryType.OPAQUE_DIR, mode=0o755,
            uid=0, gid=0))  # fmt: skip
    expected = {e.path: e for e in entries if e.path not in ("a/050", "bb", "bb/y")}
    expected.update({"a": top.entries[0], "bb": top.entries[2]})
    view = merged_view([m(*entries), top])
    assert dict(view) == expected and len(view) == len(expected)
    assert list(view) == sorted(expected)
    for absent in ("a/050", "bb/y", "a/1000", "", "zz", "a/0"):
        assert absent not in view and view.lookup(absent) is None
    for directory in ("a", "b", "b/c", "bb", "é", "a/049", "a/0", "zzz", "0"):
        brute = any(p.startswith(directory + "/") for p in expected)
        assert view.has_under(directory) is brute, directory
