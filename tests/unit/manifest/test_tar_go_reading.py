# SPDX-License-Identifier: Apache-2.0
"""manifest_from_tar lists what containerd (Go's archive/tar) unpacks, or refuses.

Each layer here was read differently by CPython's ``tarfile``, which the
server used before: the manifest left out or invented files that
containerd's unpack creates, or accepted a layer containerd reads otherwise.
Layers that Go and CPython's ``tarfile`` read differently are now refused:
Python-based scanners would see other entries than containerd.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import (
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    manifest_from_tar,
)
from tests.unit.manifest._rawtar import END, data, entry, gnu_long, header, pax, pax_record

ELF = b"\x7fELF" + bytes(60)
PRELOAD = b"/usr/bin/backdoor\n"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def paths(raw: bytes) -> dict[str, ManifestEntry]:
    return {e.path: e for e in manifest_from_tar(io.BytesIO(raw)).entries}


BACKDOOR = (
    entry(b"etc/motd", b"hi\n")
    + header(b"usr/bin/backdoor", size=len(ELF), mode=0o4755, checksum="nul-led")
    + data(ELF)
    + entry(b"etc/ld.so.preload", PRELOAD)
    + END
)


def test_a_nul_led_checksum_is_refused_as_ambiguous() -> None:
    # tarfile takes the second header (checksum field "\0" + digits) for the
    # end of the archive; Go trims the NUL, and containerd unpacks a setuid
    # binary and an ld.so.preload that a tarfile-based reader never sees.
    # Listing them (Go's reading) would still hide them from such scanners.
    with pytest.raises(
        InvalidInput,
        match=r"byte 1024: ambiguous checksum field .*Go's archive/tar reads \d+, "
        r"CPython's tarfile reads 0 \(a bad checksum: the end of the archive\)",
    ):
        manifest_from_tar(io.BytesIO(BACKDOOR))


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (
            header(b"carrier", size=b"\x00\x00\x0000001000\x00") + header(b"hidden") + END,
            r"ambiguous size field .*Go's archive/tar reads 512, CPython's tarfile reads 0",
        ),
        (
            header(b"f", mode=b"\x00004755\x00") + END,
            r"ambiguous mode field .*reads 2541, CPython's tarfile reads 0",
        ),
        (
            header(b"f", uid=b"\x00\x00\x00\x00001\x00") + END,
            r"ambiguous uid field .*reads 1, CPython's tarfile reads 0",
        ),
        (
            header(b"f", uid=b"\x81" + bytes(6) + b"\x01") + END,
            r"ambiguous uid field .*CPython's tarfile reads an invalid header",
        ),
        (
            pax(pax_record(b"path", b"from-pax"))
            + gnu_long(b"L", b"from-gnu")
            + header(b"h")
            + END,
            "a PAX path and a GNU long name for one entry",
        ),
        (
            gnu_long(b"L", b"first") + gnu_long(b"L", b"second") + header(b"h") + END,
            r"two GNU long name \('L'\) headers for one entry",
        ),
        (
            pax(pax_record(b"uid", b"1")) + pax(pax_record(b"uid", b"2")) + header(b"h") + END,
            r"two PAX \('x'\) headers for one entry",
        ),
        (
            gnu_long(b"L", b"\x00") + header(b"h") + END,
            r"empty GNU long name \('L'\) \(Go's archive/tar keeps",
        ),
        (
            gnu_long(b"K", b"") + header(b"h", typeflag=b"2", link=b"t") + END,
            r"empty GNU long link \('K'\)",
        ),
        (
            pax(pax_record(b"path", b"")) + entry(b"kept") + END,
            "empty PAX path record",
        ),
        (
            pax(pax_record(b"uid", b"")) + entry(b"kept", uid=1000) + END,
            "empty PAX uid record",
        ),
        (
            header(b"f", magic=b"ustar ", version=b" \x00", prefix=b"etc") + END,
            "bytes where USTAR has its prefix",
        ),
        (
            gnu_long(b"L", b"dir/") + header(b"h", typeflag=b"\x00") + END,
            "a NUL-typed entry is a directory for Go's archive/tar and a file for CPython's",
        ),
    ],
    ids=[
        "nul-led-size",
        "nul-led-mode",
        "nul-led-uid",
        "base256-marker-0x81",
        "pax-path-and-gnu-long-name",
        "two-gnu-long-names",
        "two-pax-headers",
        "empty-gnu-long-name",
        "empty-gnu-long-link",
        "empty-pax-path",
        "empty-pax-uid",
        "gnu-magic-with-prefix",
        "nul-type-dir-by-long-name",
    ],
)
def test_headers_go_and_cpython_read_differently_are_refused(layer: bytes, reason: str) -> None:
    # Go's reading is containerd's; CPython's is that of Python-based
    # scanners. Where they differ, no single manifest can serve both.
    with pytest.raises(InvalidInput, match=reason):
        manifest_from_tar(io.BytesIO(layer))


def test_headers_both_readers_agree_on_are_accepted() -> None:
    # Go's writer: checksum "%06o\0 " or "%07o\0", numbers "%07o\0", base-256
    # behind 0x80, one PAX header and one GNU long link, garbage after a NUL.
    layer = (
        header(b"a", checksum="go", size=1)
        + data(b"A")
        + header(b"b", size=b"\x80" + bytes(10) + b"\x02")
        + data(b"BB")
        + header(b"c", mode=b"0000644\x00", uid=b"   12 \x00\x00", gid=b"0000007\x00junk"[:8])
        + pax(pax_record(b"path", b"long/" + b"n" * 120))
        + gnu_long(b"K", b"target")
        + header(b"h", typeflag=b"2")
        + END
    )
    got = paths(layer)
    assert (got["a"].size, got["b"].size, got["c"].uid, got["c"].gid) == (1, 2, 10, 7)
    assert got["long/" + "n" * 120].link == "target"


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (
            header(b"g", typeflag=b"g", size=0) + entry(b"f"),
            "global PAX headers ('g') are not supported",
        ),
        (entry(b"f") + END + b"\x00" * 7 + b"X", "non-zero bytes after the end-of-archive"),
        (header(b"f", uid=2**21 - 1) + pax(b"") + END, "with no entry after it"),
        (pax(pax_record(b"uid", b"4294967295")) + entry(b"f") + END, "uid 4294967295 out of"),
        (header(b"c", typeflag=b"3", devmajor=4096, devminor=0) + END, "device major 4096"),
        (header(b"c", typeflag=b"7", size=0) + END, "unsupported entry type '7'"),
        (
            pax(pax_record(b"SCHILY.xattr.security.capability", b"")) + entry(b"f") + END,
            "empty security.capability",
        ),
        (
            pax(pax_record(b"SCHILY.xattr.system.posix_acl_access", b"\x02" + bytes(27)))
            + entry(b"etc/shadow")
            + END,
            "system xattr b'system.posix_acl_access'",
        ),
        (entry(b".wh.d/f") + END, "whiteout name used as a directory"),
        (entry(b"v") + entry(b".wh.v") + END, "of a path this layer already created"),
        (entry(b"d/f") + entry(b".wh.d") + END, "of a path this layer already created"),
    ],
    ids=[
        "global-header",
        "trailing-garbage",
        "pending-pax",
        "uid-minus-one",
        "device-major",
        "contiguous",
        "empty-capability",
        "posix-acl",
        "whiteout-named-directory",
        "whiteout-after-file",
        "whiteout-after-implicit-dir",
    ],
)
def test_layers_containerd_reads_otherwise_are_refused(layer: bytes, reason: str) -> None:
    # Over an (empty) parent: a bottom layer's whiteouts are refused anyway.
    above_empty = [FileManifest.from_entries([])]
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        manifest_from_tar(io.BytesIO(layer), lower=above_empty)


def test_oversized_pax_header_is_refused_before_it_is_read() -> None:
    records = pax_record(b"comment", b"x" * 70_000)
    with pytest.raises(TooLarge, match="'x' header of 70015 bytes exceeds 65536"):
        manifest_from_tar(io.BytesIO(pax(records) + entry(b"f") + END))
    small = ManifestLimits(max_tar_header_bytes=1024)
    with pytest.raises(TooLarge, match="exceeds 1024"):
        manifest_from_tar(io.BytesIO(gnu_long(b"L", b"n" * 2000) + entry(b"f") + END), limits=small)


def test_total_path_bytes_are_capped() -> None:
    layer = b"".join(entry(b"d%03d/%s" % (i, b"f" * 90)) for i in range(20)) + END
    assert len(paths(layer)) == 40
    with pytest.raises(TooLarge, match="names and link targets exceed 1000 bytes"):
        manifest_from_tar(io.BytesIO(layer), limits=ManifestLimits(max_total_path_bytes=1000))


def test_the_stream_is_read_to_its_end() -> None:
    stream = io.BytesIO(entry(b"f", b"1") + END + bytes(100_000))
    manifest_from_tar(stream)
    assert stream.read() == b""


@pytest.mark.parametrize(
    "lower_layer",
    [
        entry(b"real/x") + header(b"a", typeflag=b"2", link=b"real") + END,
        header(b"a", typeflag=b"2", link=b"real") + END,
        entry(b"a") + END,
    ],
    ids=["symlink-at-path", "dangling-symlink-at-path", "file-above-path"],
)
def test_implicit_dirs_under_lower_non_directories_are_refused(lower_layer: bytes) -> None:
    # containerd's mkparent resolves "a" inside each lower layer's directory
    # (following a symlink there, or failing with ENOTDIR under a file)
    # before copying a missing parent's mode and owner.
    lower = [manifest_from_tar(io.BytesIO(lower_layer))]
    upper = entry(b"a/b/c", b"x") + END
    with pytest.raises(InvalidInput, match="under a lower layer's"):
        manifest_from_tar(io.BytesIO(upper), lower=lower)


def test_no_server_or_agent_code_reads_tars_with_tarfile() -> None:
    # CPython's tarfile reads some headers unlike Go (see the reader's
    # docstring) and parses PAX in quadratic time before 3.11.10.
    import re
    from pathlib import Path

    root = Path(__file__).parents[3]
    imports = re.compile(r"^\s*(import|from)\s+tarfile\b", re.MULTILINE)
    users = [
        str(path.relative_to(root))
        for package in ("attestor", "agent")
        for path in (root / package).rglob("*.py")
        if imports.search(path.read_text())
    ]
    assert users == []


@pytest.mark.parametrize(
    "layer",
    [
        header(b"x/y/", typeflag=b"5") + header(b"x", typeflag=b"2", link=b"d"),
        header(b"l/", typeflag=b"5") + header(b"l", typeflag=b"2", link=b"../../etc"),
        header(b"p/q/", typeflag=b"5") + entry(b"p", b"now a file"),
    ],
    ids=["ancestor-became-dangling-symlink", "dotdot-symlink", "ancestor-became-file"],
)
def test_listed_directories_must_resolve_at_the_end(layer: bytes) -> None:
    # containerd's applier ends by setting each listed directory's times at
    # its fs.RootPath; a path that no longer resolves fails the unpack
    # (tarfile-era code accepted these).
    with pytest.raises(InvalidInput, match="does not resolve at the end of the layer"):
        manifest_from_tar(io.BytesIO(layer + END))


def test_listed_directory_replaced_by_a_file_or_a_symlink_to_a_directory_is_fine() -> None:
    assert sorted(paths(header(b"a/", typeflag=b"5") + entry(b"a/f") + entry(b"a") + END)) == ["a"]
    layer = entry(b"t/k") + header(b"d/", typeflag=b"5") + header(b"d", typeflag=b"2", link=b"t")
    assert sorted(paths(layer + END)) == ["d", "t", "t/k"]


def test_path_lookups_per_layer_are_bounded() -> None:
    # Each implicit directory is looked up, with its ancestors, in every lower
    # layer: a deep chain over many layers would cost quadratic time.
    lower = [manifest_from_tar(io.BytesIO(entry(b"l%d" % i) + END)) for i in range(3)]
    deep = b"/".join(b"d%02d" % i for i in range(60)) + b"/f"
    limits = ManifestLimits(max_entries=100)
    with pytest.raises(TooLarge, match="too many path lookups"):
        layer = pax(pax_record(b"path", deep)) + entry(b"x") + END
        manifest_from_tar(io.BytesIO(layer), lower=lower, limits=limits)
    shallow = b"/".join(b"d%02d" % i for i in range(10)) + b"/f"
    got = manifest_from_tar(io.BytesIO(entry(shallow) + END), lower=lower, limits=limits)
    assert len(got.entries) == 11
