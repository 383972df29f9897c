# SPDX-License-Identifier: Apache-2.0
"""manifest_from_tar lists what containerd (Go's archive/tar) unpacks, or refuses.

Each layer here was read differently by CPython's ``tarfile``, which the
server used before: the manifest left out or invented files that
containerd's unpack creates, or accepted a layer containerd reads otherwise.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import EntryType, ManifestEntry, ManifestLimits, manifest_from_tar
from tests.unit.manifest._rawtar import END, data, entry, gnu_long, header, pax, pax_record

ELF = b"\x7fELF" + bytes(60)
PRELOAD = b"/usr/bin/backdoor\n"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def paths(raw: bytes) -> dict[str, ManifestEntry]:
    return {e.path: e for e in manifest_from_tar(io.BytesIO(raw)).entries}


def test_entries_after_a_nul_led_checksum_are_in_the_manifest() -> None:
    # tarfile took the second header (checksum field "\0" + digits) for the
    # end of the archive; Go trims the NUL, and containerd unpacks a setuid
    # binary and an ld.so.preload that the signed manifest did not list.
    layer = (
        entry(b"etc/motd", b"hi\n")
        + header(b"usr/bin/backdoor", size=len(ELF), mode=0o4755, checksum="nul-led")
        + data(ELF)
        + entry(b"etc/ld.so.preload", PRELOAD)
        + END
    )
    got = paths(layer)
    assert sorted(got) == [
        "etc",
        "etc/ld.so.preload",
        "etc/motd",
        "usr",
        "usr/bin",
        "usr/bin/backdoor",
    ]
    assert got["usr/bin/backdoor"] == ManifestEntry(
        "usr/bin/backdoor", EntryType.FILE, mode=0o4755, uid=0, gid=0, size=64, sha256=sha(ELF)
    )
    assert got["etc/ld.so.preload"].sha256 == sha(PRELOAD)


def test_nul_led_size_field_is_read_as_go_reads_it() -> None:
    # tarfile read the size "\0\0\0...1000" as 0 and the data as the next
    # header, inventing "hidden"; Go trims the NULs: 512 bytes of data.
    inner = header(b"hidden")
    layer = header(b"carrier", size=b"\x00\x00\x0000001000\x00") + inner + END
    got = paths(layer)
    assert sorted(got) == ["carrier"]
    assert (got["carrier"].size, got["carrier"].sha256) == (512, sha(inner))


def test_gnu_long_name_beats_an_earlier_pax_path() -> None:
    layer = pax(pax_record(b"path", b"from-pax")) + gnu_long(b"L", b"from-gnu") + header(b"h")
    assert sorted(paths(layer + END)) == ["from-gnu"]


def test_an_empty_gnu_long_name_resets_an_earlier_one() -> None:
    layer = gnu_long(b"L", b"first") + gnu_long(b"L", b"\x00") + header(b"h") + END
    assert sorted(paths(layer)) == ["h"]


def test_empty_pax_values_keep_the_header_fields() -> None:
    # tarfile applied path="" (dropping the entry as the root) and uid="" as 0.
    layer = pax(pax_record(b"path", b"") + pax_record(b"uid", b"")) + entry(b"kept", uid=1000)
    got = paths(layer + END)
    assert sorted(got) == ["kept"] and got["kept"].uid == 1000


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
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        manifest_from_tar(io.BytesIO(layer))


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
