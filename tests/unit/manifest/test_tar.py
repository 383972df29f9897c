# SPDX-License-Identifier: Apache-2.0
"""manifest_from_tar: every entry type and the replay rules of the spec."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
import zstandard

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import (
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    manifest_from_layer_blob,
    manifest_from_tar,
)

# The stream's own parts, tested where they live: no caller outside the package needs them.
from attestor.manifest._stream import HashingReader, open_decompressed
from tests.unit.manifest._layers import T, cap_pax, tar_bytes

CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service
#: An empty parent layer: whiteouts and opaque markers need one below them.
ABOVE_EMPTY = (FileManifest.from_entries([]),)


def build(members: list[T], **kw: object):
    return manifest_from_tar(io.BytesIO(tar_bytes(members)), **kw)  # type: ignore[arg-type]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_entry_type_is_recorded() -> None:
    m = build(
        [
            T("./bin/", "dir", mode=0o755),
            T("./bin/su", data=b"su", mode=0o4755),
            T("./bin/sg", data=b"sg", mode=0o2744, uid=5, gid=6),
            T("./tmp/", "dir", mode=0o1777),
            T("./bin/sh", "symlink", link="/bin/busybox", uid=1, gid=2),
            T("./bin/sg2", "hardlink", link="./bin/sg", mode=0o2744, uid=5, gid=6),
            T("./dev/null", "char", mode=0o666, dev=(1, 3)),
            T("./dev/sda", "block", mode=0o660, dev=(8, 0), gid=6),
            T("./run/fifo", "fifo", mode=0o600),
            T("./bin/ping", data=b"ping", mode=0o755, pax=cap_pax(CAP)),
        ]
    )
    e = {x.path: x for x in m.entries}
    assert [x.path for x in m.entries] == sorted(e)
    assert e["bin"] == ManifestEntry("bin", EntryType.DIR, mode=0o755, uid=0, gid=0)
    assert e["bin/su"].mode == 0o4755 and e["bin/su"].sha256 == sha(b"su")
    assert e["bin/sg"] == ManifestEntry(
        "bin/sg", EntryType.FILE, mode=0o2744, uid=5, gid=6, size=2, sha256=sha(b"sg")
    )
    assert e["tmp"].mode == 0o1777
    assert e["bin/sh"] == ManifestEntry(
        "bin/sh", EntryType.SYMLINK, uid=1, gid=2, link="/bin/busybox"
    )
    assert e["bin/sg2"].type is EntryType.HARDLINK and e["bin/sg2"].link == "bin/sg"
    assert e["bin/sg2"].sha256 == e["bin/sg"].sha256 and e["bin/sg2"].mode == 0o2744
    assert e["dev/null"] == ManifestEntry(
        "dev/null", EntryType.CHARDEV, mode=0o666, uid=0, gid=0, devmajor=1, devminor=3
    )
    assert e["dev/sda"].type is EntryType.BLOCKDEV and e["dev/sda"].devmajor == 8
    assert e["run/fifo"].type is EntryType.FIFO
    assert e["bin/ping"].capability == CAP
    # Implicit parents: dev/ and run/ were never listed.
    assert e["dev"] == ManifestEntry("dev", EntryType.DIR, mode=0o755, uid=0, gid=0)
    assert e["run"] == ManifestEntry("run", EntryType.DIR, mode=0o755, uid=0, gid=0)


def test_hardlink_group_first_path_is_the_file_whatever_the_tar_order() -> None:
    m = build([T("z", data=b"x"), T("a", "hardlink", link="z")])
    assert m.get("a") is not None and m.get("a").type is EntryType.FILE  # type: ignore[union-attr]
    z = m.get("z")
    assert z is not None and z.type is EntryType.HARDLINK and z.link == "a"


def test_replaced_hardlink_target_leaves_the_link_alone() -> None:
    m = build([T("a", data=b"old"), T("b", "hardlink", link="a"), T("a", data=b"new")])
    a, b = m.get("a"), m.get("b")
    assert a is not None and b is not None
    assert (a.type, a.sha256) == (EntryType.FILE, sha(b"new"))
    assert (b.type, b.sha256) == (EntryType.FILE, sha(b"old"))


def test_whiteouts_and_opaque_dirs() -> None:
    m = build(
        [
            T("etc/", "dir", mode=0o755),
            T("etc/.wh.passwd", mode=0o600, uid=3),
            T(".wh.gone"),
            T("var/cache/.wh..wh..opq"),
            T("opt/", "dir", mode=0o700),
            T("opt/.wh..wh..opq"),
        ],
        lower=ABOVE_EMPTY,
    )
    assert m.get("etc/passwd") == ManifestEntry("etc/passwd", EntryType.WHITEOUT)
    assert m.get("gone") == ManifestEntry("gone", EntryType.WHITEOUT)
    assert m.get("var/cache") == ManifestEntry(
        "var/cache", EntryType.OPAQUE_DIR, mode=0o755, uid=0, gid=0
    )
    assert m.get("opt") == ManifestEntry("opt", EntryType.OPAQUE_DIR, mode=0o700, uid=0, gid=0)
    assert m.get("var/cache/.wh..wh..opq") is None and m.get("etc/.wh.passwd") is None


def test_dir_listed_after_its_opaque_marker_stays_opaque_and_takes_the_mode() -> None:
    m = build([T("d/.wh..wh..opq"), T("d/", "dir", mode=0o750, uid=7)], lower=ABOVE_EMPTY)
    assert m.get("d") == ManifestEntry("d", EntryType.OPAQUE_DIR, mode=0o750, uid=7, gid=0)


@pytest.mark.parametrize("marker", ["etc/.wh.passwd", ".wh.gone", "var/cache/.wh..wh..opq"])
def test_whiteouts_and_opaque_markers_in_the_bottom_layer_are_refused(marker: str) -> None:
    # containerd applies a layer with no parent without overlayfs conversion
    # (targets deleted, markers dropped), so the manifest could not match.
    with pytest.raises(InvalidInput, match=r"in the bottom layer \(a base layer has nothing"):
        build([T("etc/", "dir"), T(marker)])
    assert build([T("etc/", "dir"), T(marker)], lower=ABOVE_EMPTY) is not None


def test_duplicates_last_one_wins() -> None:
    m = build(
        [
            T("f", data=b"one", mode=0o600),
            T("f", data=b"two", mode=0o644),
            T("d/", "dir", mode=0o700),
            T("d/x", data=b"x"),
            T("d/", "dir", mode=0o755, uid=1),
        ]
    )
    f, d = m.get("f"), m.get("d")
    assert f is not None and (f.sha256, f.mode) == (sha(b"two"), 0o644)
    assert d == ManifestEntry("d", EntryType.DIR, mode=0o755, uid=1, gid=0)
    assert m.get("d/x") is not None


def test_non_directory_replacing_a_directory_drops_its_subtree() -> None:
    m = build([T("d/", "dir"), T("d/e/f", data=b"1"), T("d", data=b"file")])
    assert [(e.path, e.type) for e in m.entries] == [("d", EntryType.FILE)]
    m = build([T("x/k"), T("d/", "dir"), T("d/e/f", data=b"1"), T("d", "symlink", link="x")])
    assert [e.path for e in m.entries] == ["d", "x", "x/k"]
    # containerd sets a listed directory's times last, at its path resolved
    # through symlinks: here d -> x, which does not exist, fails the unpack
    # (checked on containerd 1.6).
    with pytest.raises(InvalidInput, match="directory 'd' does not resolve"):
        build([T("d/", "dir"), T("d/e/f", data=b"1"), T("d", "symlink", link="x")])


def test_implicit_dirs_copy_the_lower_layers_directory() -> None:
    lower = build([T("usr/", "dir", mode=0o750, uid=9, gid=9, pax=cap_pax(CAP))])
    top = build([T("usr/bin/x", data=b"x")], lower=[lower])
    assert top.get("usr") == ManifestEntry(
        "usr", EntryType.DIR, mode=0o750, uid=9, gid=9, capability=CAP
    )
    assert top.get("usr/bin") == ManifestEntry("usr/bin", EntryType.DIR, mode=0o755, uid=0, gid=0)
    # A non-directory in the topmost lower layer hides deeper ones.
    hidden = build([T(".wh.usr")], lower=ABOVE_EMPTY)
    top2 = build([T("usr/x", data=b"x")], lower=[hidden, lower])
    assert top2.get("usr") == ManifestEntry("usr", EntryType.DIR, mode=0o755, uid=0, gid=0)
    # One level deeper, containerd's lookup of usr/bin in that layer fails
    # with ENOTDIR and so does its unpack (checked on containerd 1.6).
    with pytest.raises(InvalidInput, match="under a lower layer's whiteout 'usr'"):
        build([T("usr/bin/x", data=b"x")], lower=[hidden, lower])


def test_root_entry_is_ignored() -> None:
    m = build([T("./", "dir", mode=0o700), T("a", data=b"")])
    assert [e.path for e in m.entries] == ["a"]


def test_gnu_and_ustar_formats_give_the_same_manifest() -> None:
    members = [T("a/" + "x" * 120, data=b"long"), T("a/l", "symlink", link="y" * 120)]
    pax = manifest_from_tar(io.BytesIO(tar_bytes(members)))
    gnu = manifest_from_tar(io.BytesIO(tar_bytes(members, fmt=tarfile.GNU_FORMAT)))
    assert pax.canonical_bytes() == gnu.canonical_bytes()


@pytest.mark.parametrize(
    "members",
    [
        [T("../etc/passwd")],
        [T("a/../../b")],
        [T("/etc/passwd")],
        [T("a", "hardlink", link="missing")],
        [T("a", "hardlink", link="../x")],
        [T("d/", "dir"), T("h", "hardlink", link="d")],
        [T("a", data=b"1"), T("b", "hardlink", link="a", uid=1)],
        [T("a", data=b"1", pax=cap_pax(CAP)), T("b", "hardlink", link="a")],
        [T("s", data=b"1", mode=0o4755), T("h", "hardlink", link="s", mode=0o4755)],
        [T("s", data=b"1", mode=0o2755), T("h", "hardlink", link="s", mode=0o2755)],
        [T("c", "char", dev=(0, 0))],
        [T("f", data=b"1"), T("f/g", data=b"2")],
        [T("l", "symlink", link="/"), T("l/g", data=b"2")],
        [T(".wh..wh..opq")],
        [T("d/.wh.")],
        [T("d/.wh..wh.plnk")],
        [T("f", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})],
        [T("f\udcff", data=b"")],
        # containerd 1.6 fails on type 7 ("unhandled tar header type").
        [T("c", "contiguous", data=b"x")],
    ],
    ids=[
        "dotdot",
        "dotdot-inner",
        "absolute",
        "hardlink-missing",
        "hardlink-traversal",
        "hardlink-to-dir",
        "hardlink-owner-differs",
        "hardlink-cap-differs",
        "hardlink-setuid",
        "hardlink-setgid-exec",
        "char-0-0",
        "parent-is-file",
        "parent-is-symlink",
        "opaque-root",
        "empty-whiteout",
        "aufs-meta",
        "trusted-xattr",
        "non-utf8",
        "contiguous",
    ],
)
def test_rejected(members: list[T]) -> None:
    with pytest.raises(InvalidInput):
        build(members)


def test_malformed_and_truncated_tars_are_invalid_input() -> None:
    good = tar_bytes([T("a", data=b"x" * 5000)])
    with pytest.raises(InvalidInput):
        manifest_from_tar(io.BytesIO(good[:1200]))
    with pytest.raises(InvalidInput):
        manifest_from_tar(io.BytesIO(b"\x01" * 1024))


def test_limits() -> None:
    with pytest.raises(TooLarge):
        build([T("a"), T("b"), T("c")], limits=ManifestLimits(max_entries=2))
    with pytest.raises(TooLarge):
        build([T("a", data=b"123"), T("b", data=b"45")], limits=ManifestLimits(max_total_size=4))
    with pytest.raises(TooLarge):
        build([T("a" * 50)], limits=ManifestLimits(max_path_bytes=10))
    # Implicit directories count too.
    with pytest.raises(TooLarge):
        build([T("a/b/c/d")], limits=ManifestLimits(max_entries=3))


def test_large_file_is_streamed_in_chunks() -> None:
    data = bytes(range(256)) * 20_000  # 5 MB, several 1 MiB chunks
    m = build([T("big", data=data)])
    big = m.get("big")
    assert big is not None and (big.size, big.sha256) == (len(data), sha(data))


@pytest.mark.parametrize(
    ("media_type", "compress"),
    [
        ("application/vnd.oci.image.layer.v1.tar", lambda b: b),
        ("application/vnd.oci.image.layer.v1.tar+gzip", gzip.compress),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", gzip.compress),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            lambda b: (
                zstandard.ZstdCompressor().compress(b[:700])
                + zstandard.ZstdCompressor().compress(b[700:])
            ),
        ),
    ],
)
def test_one_pass_gives_manifest_and_diff_id(media_type: str, compress) -> None:
    raw = tar_bytes([T("a/b", data=b"hello"), T("a/c", "symlink", link="b")])
    raw += b"\0" * 4096  # trailing padding still counts for the diffID
    scan = manifest_from_layer_blob(io.BytesIO(compress(raw)), media_type)
    assert scan.diff_id == "sha256:" + sha(raw)
    assert scan.uncompressed_size == len(raw)
    assert scan.manifest == manifest_from_tar(io.BytesIO(raw))


def test_blob_digest_can_be_hashed_in_the_same_pass() -> None:
    raw = tar_bytes([T("a", data=b"hello")])
    blob = gzip.compress(raw)
    outer = HashingReader(io.BytesIO(blob))
    scan = manifest_from_layer_blob(outer, "application/vnd.oci.image.layer.v1.tar+gzip")  # type: ignore[arg-type]
    assert outer.digest == "sha256:" + sha(blob)
    assert scan.diff_id == "sha256:" + sha(raw)


def test_unknown_media_type_and_corrupt_compression() -> None:
    with pytest.raises(InvalidInput):
        open_decompressed(io.BytesIO(b""), "application/vnd.oci.image.layer.v1.tar+bzip2")
    with pytest.raises(InvalidInput):
        manifest_from_layer_blob(
            io.BytesIO(b"\x1f\x8b\x08\x00garbage"), "application/vnd.oci.image.layer.v1.tar+gzip"
        )
    with pytest.raises(InvalidInput):
        manifest_from_layer_blob(
            io.BytesIO(b"\x28\xb5\x2f\xfdgarbage"), "application/vnd.oci.image.layer.v1.tar+zstd"
        )
