# SPDX-License-Identifier: Apache-2.0
"""manifest_from_snapshot equals manifest_from_tar on a containerd-like unpack."""

from __future__ import annotations

import io
import os
import socket
import stat
from pathlib import Path

import pytest

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import (
    EntryType,
    FileManifest,
    FileState,
    ManifestLimits,
    compare_manifests,
    compare_snapshot,
    manifest_from_snapshot,
    manifest_from_tar,
    scan_snapshot,
)
from tests.harness.binaries import require_root
from tests.unit.manifest._layers import T, cap_pax, tar_bytes, unpack_like_containerd

CAP = bytes.fromhex("0100000200200000000000000000000000000000")


@pytest.fixture(autouse=True)
def _as_root() -> None:
    require_root("mknod and trusted.* xattrs")


BASE = [
    T("./", "dir", mode=0o755),
    T("bin/", "dir", mode=0o755),
    T("bin/busybox", data=b"\x7fELF" + b"b" * 3000, mode=0o755),
    T("bin/sh", "symlink", link="busybox"),
    T("bin/su", data=b"su", mode=0o4755),
    T("bin/ash", "hardlink", link="bin/busybox", mode=0o755),
    T("bin/ping", data=b"ping", mode=0o755, pax=cap_pax(CAP)),
    T("etc/", "dir", mode=0o2750, uid=0, gid=42),
    T("etc/shadow", data=b"root:*:", mode=0o640, gid=42),
    T("tmp/", "dir", mode=0o1777),
    T("dev/null", "char", mode=0o666, dev=(1, 3)),
    T("dev/loop0", "block", mode=0o660, dev=(7, 0), gid=6),
    T("run/initctl", "fifo", mode=0o600),
    T("srv/data/deep/file.txt", data=b"implicit parents", uid=1000, gid=1000),
    T("var/lib/", "dir", mode=0o700, uid=99),
    T("var/lib/x", data=b"x"),
    T("dup", data=b"first", mode=0o600),
    T("dup", data=b"second", mode=0o644, uid=3),
]

UPPER = [
    T("etc/.wh.shadow"),
    T("var/lib/.wh..wh..opq"),
    T("var/lib/new", data=b"new"),
    T("srv/data/deep/more.txt", data=b"more"),  # srv/data/deep implicit: copied from lower
    T("tmp/t", data=b"t", mode=0o600),
    T("bin/ping", data=b"ping2", mode=0o755, pax=cap_pax(CAP)),
    T("bin/ping6", "hardlink", link="bin/ping", mode=0o755, pax=cap_pax(CAP)),
]


def test_base_layer_snapshot_equals_tar(tmp_path: Path) -> None:
    data = tar_bytes(BASE)
    root = tmp_path / "1" / "fs"
    unpack_like_containerd(data, root)
    from_tar = manifest_from_tar(io.BytesIO(data))
    from_disk = manifest_from_snapshot(root)
    assert from_disk.canonical_bytes() == from_tar.canonical_bytes()
    assert from_disk.tree_digest == from_tar.tree_digest
    types = {e.type for e in from_disk.entries}
    assert {EntryType.HARDLINK, EntryType.SYMLINK, EntryType.CHARDEV, EntryType.FIFO} <= types
    ping = from_disk.get("bin/ping")
    assert ping is not None and ping.capability == CAP
    assert from_disk.get("bin/su") is not None and from_disk.get("bin/su").mode == 0o4755  # type: ignore[union-attr]


def test_upper_layer_with_whiteout_opaque_and_implicit_dirs(tmp_path: Path) -> None:
    base, upper = tar_bytes(BASE), tar_bytes(UPPER)
    lower_root, upper_root = tmp_path / "1" / "fs", tmp_path / "2" / "fs"
    unpack_like_containerd(base, lower_root)
    unpack_like_containerd(upper, upper_root, [lower_root])
    lower_m = manifest_from_tar(io.BytesIO(base))
    from_tar = manifest_from_tar(io.BytesIO(upper), lower=[lower_m])
    from_disk = manifest_from_snapshot(upper_root)
    assert from_disk.canonical_bytes() == from_tar.canonical_bytes()
    assert from_disk.get("etc/shadow") is not None
    assert from_disk.get("etc/shadow").type is EntryType.WHITEOUT  # type: ignore[union-attr]
    assert from_disk.get("var/lib").type is EntryType.OPAQUE_DIR  # type: ignore[union-attr]
    # Copied from the lower layer's var/lib (0700, uid 99), not 0755 0:0.
    assert (from_disk.get("var/lib").mode, from_disk.get("var/lib").uid) == (0o700, 99)  # type: ignore[union-attr]
    assert from_disk.get("srv/data").uid == 0  # type: ignore[union-attr]
    # Without the lower manifests, the tar side cannot know those attributes.
    empty_lower = [FileManifest.from_entries([])]
    assert (
        manifest_from_tar(io.BytesIO(upper), lower=empty_lower).canonical_bytes()
        != from_disk.canonical_bytes()
    )


def test_incremental_scan_reuses_unchanged_hashes(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    unpack_like_containerd(tar_bytes(BASE), root)
    full, state = scan_snapshot(root)
    again, state2 = scan_snapshot(root, state)
    assert again == full and state2 == state
    # A state entry whose stat tuple still matches is trusted without re-hashing.
    old = FileState.unpack(state["etc/shadow"])
    assert FileState.unpack(old.pack()) == old
    planted = {
        **state,
        "etc/shadow": FileState(
            old.ino, old.size, old.mtime_ns, old.ctime_ns, "0" * 64, None
        ).pack(),
    }
    reused, _ = scan_snapshot(root, planted)
    assert reused.get("etc/shadow").sha256 == "0" * 64  # type: ignore[union-attr]
    # A changed file (same size, restored mtime) is re-hashed because ctime moved.
    target = root / "etc" / "shadow"
    st = os.stat(target)
    target.write_bytes(b"root:X:")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed, _ = scan_snapshot(root, state)
    assert changed.get("etc/shadow").sha256 != full.get("etc/shadow").sha256  # type: ignore[union-attr]
    assert changed == manifest_from_snapshot(root)


def test_snapshot_side_types_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fspath(root / "s"))
        m = manifest_from_snapshot(root)
        assert m.get("s").type is EntryType.SOCKET  # type: ignore[union-attr]
    finally:
        sock.close()
    (root / "s").unlink()
    (root / "a").write_bytes(b"1")
    (root / "b").write_bytes(b"2")
    with pytest.raises(TooLarge):
        manifest_from_snapshot(root, limits=ManifestLimits(max_entries=1))
    with pytest.raises(TooLarge):
        manifest_from_snapshot(root, limits=ManifestLimits(max_total_size=1))
    os.setxattr(root, "trusted.overlay.opaque", b"y")
    with pytest.raises(InvalidInput):
        manifest_from_snapshot(root)
    with pytest.raises(InvalidInput):
        manifest_from_snapshot(root / "a")
    with pytest.raises(InvalidInput):
        manifest_from_snapshot(tmp_path / "missing")


def test_non_utf8_name_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"bad\xff"), "wb"):
        pass
    with pytest.raises(InvalidInput):
        manifest_from_snapshot(root)


def test_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "fs"
    root.mkdir()
    (root / "escape").symlink_to(outside)
    m = manifest_from_snapshot(root)
    assert [(e.path, e.type) for e in m.entries] == [("escape", EntryType.SYMLINK)]
    assert stat.S_ISLNK(os.lstat(root / "escape").st_mode)


def test_compare_snapshot_equals_compare_manifests_without_building_one(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    unpack_like_containerd(tar_bytes(BASE), root)
    attested = manifest_from_snapshot(root)
    first = compare_snapshot(root, attested)
    assert first.changes == () and first.files == 8 and first.full
    _, state = scan_snapshot(root)
    assert first.state.files() == len(state) == 8
    assert first.hashed == sum(FileState.unpack(v).size for v in state.values())
    # Tamper: content, setuid, a new file, a removed file, a broken hardlink
    # group, a retargeted symlink, a new hardlink to a file.
    (root / "etc/shadow").write_bytes(b"root:X:")
    os.chmod(root / "bin/ping", 0o4755)  # noqa: S103
    (root / "tmp/new").write_bytes(b"n")
    (root / "var/lib/x").unlink()
    os.unlink(root / "bin/ash")
    (root / "bin/ash").write_bytes(b"\x7fELF" + b"b" * 3000)
    os.chmod(root / "bin/ash", 0o755)  # noqa: S103
    os.unlink(root / "bin/sh")
    os.symlink("su", root / "bin/sh")
    os.link(root / "dup", root / "tmp/dup2")
    again = compare_snapshot(root, attested, first.state)
    expected = tuple(compare_manifests(attested, manifest_from_snapshot(root)))
    assert again.changes == expected
    kinds = {(c.path, c.kind) for c in expected}
    want = {("etc/shadow", "content"), ("bin/ping", "mode"), ("tmp/new", "added"),
            ("var/lib/x", "removed"), ("bin/sh", "link"), ("tmp/dup2", "added")}  # fmt: skip
    assert want <= kinds
    assert again.files == 9
