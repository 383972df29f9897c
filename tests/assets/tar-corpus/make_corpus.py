# SPDX-License-Identifier: Apache-2.0
"""Write the tricky layer tars of this directory, byte for byte, from scratch.

Every 512-byte header is assembled by hand (``tarbuild.py``, no ``tarfile``),
so each case controls exactly the bytes that two tar readers could read
differently: the checksum's padding, base-256 numbers, PAX and GNU extension
records, format magic, end-of-archive blocks. The layers are the corpus of
the differential tests (``tests/integration/manifest/test_tar_differential.py``
and ``test_tar_containerd.py``): each must be either refused by the server or
give the same file manifest as Go's ``archive/tar`` unpacking it (umoci,
containerd).

Run ``python tests/assets/tar-corpus/make_corpus.py`` to rewrite the ``.tar``
files and ``corpus.json``; the output is deterministic. ``python make_corpus.py
--check`` exits 1 when a committed file differs from what the script writes.
The tests import this module for the builder's functions, re-exported here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _builder() -> ModuleType:
    # Loaded by path: this directory is not a package, and the tests load
    # this file by path too.
    name = "tar_corpus_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "tarbuild.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_b = _builder()
BLOCK, MTIME, USTAR, GNU, V7 = _b.BLOCK, _b.MTIME, _b.USTAR, _b.GNU, _b.V7
base256, build, checksums, data_blocks = _b.base256, _b.build, _b.checksums, _b.data_blocks
directory, end, file, gnu_long = _b.directory, _b.end, _b.file, _b.gnu_long
header, octal, pax, pax_record, set_checksum = (
    _b.header,
    _b.octal,
    _b.pax,
    _b.pax_record,
    _b.set_checksum,
)

__all__ = [
    "BACKDOOR",
    "CASES",
    "PRELOAD",
    "Case",
    "backdoor_layer",
    "main",
    *_b.__all__,
]


@dataclass(frozen=True)
class Case:
    """One corpus layer: file name (without .tar), what it probes, its bytes."""

    name: str
    about: str
    data: bytes


PRELOAD = b"/usr/lib/libprocesshider.so\n"
BACKDOOR = b"#!/bin/sh\nexec /bin/sh -p\n"


def backdoor_layer() -> bytes:
    """The layer that hid a setuid binary from the server behind a NUL-led checksum.

    CPython's tarfile reads the NUL-led checksum as 0, calls the header the
    end of the archive and stops; Go trims the NUL and unpacks both files.
    """
    return build(
        directory("usr"),
        directory("usr/bin"),
        file("usr/bin/hello", b"hello\n", mode=0o755),
        header("usr/bin/backdoor", size=len(BACKDOOR), mode=0o4755, checksum="nul-led")
        + data_blocks(BACKDOOR),
        directory("etc"),
        file("etc/ld.so.preload", PRELOAD),
    )


def _garbage_checksum(member: bytes) -> bytes:
    """``member`` with its checksum field as six digits, NUL and a letter."""
    value = checksums(member[:BLOCK])[0]
    return member[:148] + f"{value:06o}".encode() + b"\x00X" + member[156:]


def hidden_header(name: str = "hidden") -> bytes:
    """A valid file header plus data, to place where one reader sees data."""
    return file(name, b"smuggled\n", mode=0o4755)


def _cases() -> list[Case]:
    hi = file("hi", b"hi\n")
    # fmt: off
    cases = [
        Case("backdoor-nul-checksum", "setuid usr/bin/backdoor and etc/ld.so.preload after a "
             "header whose checksum field starts with NUL", backdoor_layer()),
        # --- checksum formats -------------------------------------------------
        Case("chksum-gnu", "checksum as six digits, NUL, space (reference layer)",
             build(file("a", b"a\n"), file("b", b"b\n"))),
        Case("chksum-nul-terminated", "checksum as seven digits and a NUL",
             build(file("a", b"a\n", checksum="nul"), file("b", b"b\n", checksum="nul"))),
        Case("chksum-space-padded", "checksum with leading and trailing spaces",
             build(file("a", b"a\n", checksum="space"), file("b", b"b\n", checksum="space"))),
        Case("chksum-nul-led-first", "the first header's checksum starts with NUL",
             build(file("a", b"a\n", checksum="nul-led"), hi)),
        Case("chksum-signed", "non-ASCII name bytes and the checksum as the signed sum",
             build(file("caf\u00e9", b"x\n", signed=True), hi)),
        Case("chksum-signed-second", "second header checksummed with the signed sum",
             build(hi, file("na\u00efve", b"x\n", signed=True))),
        Case("chksum-wrong-second", "second header's checksum off by one",
             build(hi, file("b", b"b\n", checksum="wrong"), file("c", b"c\n"))),
        Case("chksum-plus-sign", "second header's checksum written with a leading '+'",
             build(hi, file("b", b"b\n", checksum="plus"))),
        Case("chksum-0o-prefix", "second header's checksum written with a '0o' prefix",
             build(hi, file("b", b"b\n", checksum="0o"))),
        Case("chksum-garbage-after-nul", "checksum digits, NUL, then a letter",
             build(hi, _garbage_checksum(file("b", b"b\n")))),
        Case("chksum-underscore", "second header's checksum with '_' between digits",
             build(hi, file("b", b"b\n", checksum="underscore"))),
        # --- numeric fields ---------------------------------------------------
        Case("b256-size", "file size in base-256",
             build(header("big", size=base256(5, 12)) + data_blocks(b"12345"), hi)),
        Case("b256-uid-gid", "uid 70000 and gid 70001 in base-256",
             build(file("owned", b"o\n", uid=base256(70000, 8), gid=base256(70001, 8)))),
        Case("b256-uid-negative", "uid -1 in base-256",
             build(hi, file("neg", b"n\n", uid=base256(-1, 8)))),
        Case("b256-uid-huge", "uid 2^40 in base-256 (beyond 32 bits)",
             build(hi, file("huge", b"h\n", uid=base256(1 << 40, 8)))),
        Case("b256-mode", "mode 04755 in base-256",
             build(file("suid", b"s\n", mode=base256(0o4755, 8)))),
        Case("b256-mode-negative", "mode -1 in base-256 (every permission bit)",
             build(file("allbits", b"a\n", mode=base256(-1, 8)))),
        Case("b256-size-negative", "size -512 in base-256",
             build(hi, header("neg", size=base256(-512, 12)) + hidden_header())),
        Case("b256-size-overflow", "size field in base-256 beyond 63 bits",
             build(hi, header("over", size=b"\x80" + b"\xff" * 11))),
        Case("octal-mode-nul-led", "mode field '\\0\\0\\0644\\0': Go trims the NULs",
             build(file("m", b"m\n", mode=b"\x00\x0000644\x00"), hi)),
        Case("octal-uid-nul-led", "uid field NUL-led with value 1000",
             build(file("u", b"u\n", uid=b"\x00001750\x00", gid=b"\x00001750\x00"), hi)),
        Case("octal-size-nul-led", "size field NUL-led: one reader sees data where the other "
             "sees a setuid file header",
             build(header("carrier", size=b"\x00" + octal(BLOCK * 2, 11)) + hidden_header(), hi)),
        Case("octal-garbage-after-nul", "mode '644\\0abc': Go stops at the NUL",
             build(file("g", b"g\n", mode=b"644\x00abc\x00"), hi)),
        Case("octal-size-no-nul", "size and mode fields of digits without a NUL",
             build(header("full", size=b"000000000003", mode=b"00000644") + data_blocks(b"abc"))),
        Case("octal-garbage-devmajor", "a regular file whose devmajor field is not octal",
             build(hi, file("dev", b"d\n", devmajor=b"zzzzzzz\x00"))),
        # --- PAX --------------------------------------------------------------
        Case("pax-path", "PAX path overrides the ustar name",
             build(pax([("path", "long/" + "p" * 150 + "/file")]), file("short", b"p\n"))),
        Case("pax-linkpath", "PAX linkpath overrides the symlink target",
             build(pax([("linkpath", "/" + "t" * 120)]),
                   header("sym", typeflag=b"2", linkname="short"))),
        Case("pax-size", "PAX size overrides a zero ustar size",
             build(pax([("size", "4")]), header("sized", size=0) + data_blocks(b"four"), hi)),
        Case("pax-size-hides-header", "PAX size says 0 where the ustar size covers a header",
             build(pax([("size", "0")]), header("carrier", size=BLOCK * 2) + hidden_header(), hi)),
        Case("pax-uid-gid", "PAX uid and gid override the ustar fields",
             build(pax([("uid", "4000000000"), ("gid", "77")]), file("ids", b"i\n"))),
        Case("pax-uid-empty", "empty PAX uid keeps the ustar uid 1000",
             build(pax([("uid", "")]), file("e", b"e\n", uid=1000), hi)),
        Case("pax-path-empty", "empty PAX path keeps the ustar name",
             build(pax([("path", "")]), file("kept", b"k\n", mode=0o4755), hi)),
        Case("pax-uid-underscore", "PAX uid '1_000' (Python int() reads 1000)",
             build(hi, pax([("uid", "1_000")]), file("us", b"u\n"))),
        Case("pax-mtime-garbage", "PAX mtime that is not a number",
             build(hi, pax([("mtime", "yesterday")]), file("t", b"t\n"))),
        Case("pax-duplicate-records", "one PAX header naming path twice: the last wins",
             build(pax([("path", "first"), ("path", "second")]), file("x", b"d\n"))),
        Case("pax-two-x-headers", "two 'x' headers in a row before one file",
             build(pax([("path", "from-first-x")]), pax([("path", "from-second-x")]),
                   file("x", b"2\n"))),
        Case("pax-x-then-L", "'x' with a path, then a GNU long name, then the file",
             build(pax([("path", "from-pax")]), gnu_long("from-gnu-L"), file("x", b"l\n"))),
        Case("pax-L-then-x", "a GNU long name, then 'x' with a path, then the file",
             build(gnu_long("from-gnu-L"), pax([("path", "from-pax")]), file("x", b"l\n"))),
        Case("pax-global-path", "'g' global header with a path and uid, then two files",
             build(pax([("path", "global"), ("uid", "99")], typeflag=b"g",
                       name="pax_global_header"), file("one", b"1\n"), file("two", b"2\n"))),
        Case("pax-global-plain", "'g' global header with only a comment",
             build(pax([("comment", "made by hand")], typeflag=b"g",
                       name="pax_global_header"), hi)),
        Case("pax-global-clobbers", "'g' headers named like an earlier file and under a new "
             "directory: containerd removes the one and creates the other's parent",
             build(file("victim", b"v\n"), pax([("comment", "g")], typeflag=b"g", name="victim"),
                   pax([("comment", "g")], typeflag=b"g", name="gparent/sub"), hi)),
        Case("pax-bad-record-length", "a PAX record whose length field is one too small",
             build(hi, header("PaxHeaders/x", typeflag=b"x", size=12)
                   + data_blocks(b"11 path=xyz\n"), file("y", b"y\n"))),
        Case("pax-nul-in-path", "a PAX path holding a NUL",
             build(hi, pax([("path", b"evil\x00name")]), file("n", b"n\n"))),
        Case("pax-capability", "SCHILY.xattr.security.capability on a file",
             build(pax([("SCHILY.xattr.security.capability",
                         b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                         b"\x00\x00\x00\x00")]),
                   file("capped", b"c\n", mode=0o755))),
        Case("pax-huge", "a PAX header of 1.1 MiB (Go refuses over 1 MiB)",
             build(pax([("comment", "z" * (1_100_000))]), file("after", b"a\n"))),
        Case("pax-rega-dir-slash", "type NUL, ustar name 'd', PAX path 'd/': Go makes a "
             "directory and reads the data blocks as headers",
             build(pax([("path", "d/")]),
                   header("d", typeflag=b"\x00", size=BLOCK * 2) + hidden_header(), hi)),
        Case("pax-record-length-zero-padded", "a PAX record length written '0029'",
             build(header("PaxHeaders/z", typeflag=b"x", size=29)
                   + data_blocks(b"0029 path=zero-padded-length\n"), file("z", b"z\n"))),
        Case("pax-record-length-plus", "a PAX record length written '+28'",
             build(header("PaxHeaders/p", typeflag=b"x", size=28)
                   + data_blocks(b"+28 path=plus-signed-length\n"), file("p", b"p\n"))),
        Case("pax-size-plus", "PAX size '+4'",
             build(pax([("size", "+4")]), header("sz", size=0) + data_blocks(b"four"), hi)),
        Case("pax-uid-negative", "PAX uid '-1' (Go's Lchown(-1) keeps the owner)",
             build(pax([("uid", "-1")]), file("neguid", b"n\n", uid=1000), hi)),
        Case("pax-path-newline", "a PAX path holding a newline",
             build(pax([("path", "line\nbreak")]), file("nl", b"n\n"))),
        Case("pax-dangling", "a PAX header followed by the end marker",
             build(hi, pax([("path", "nothing-follows")]))),
        # --- GNU long names ---------------------------------------------------
        Case("gnu-longname-nul-garbage", "GNU 'L' data 'real\\0fake': Go stops at the NUL",
             build(gnu_long(b"real\x00fake"), file("x", b"r\n"))),
        Case("gnu-longname-empty", "a GNU 'L' of zero bytes: the ustar name stays",
             build(header("././@LongLink", typeflag=b"L", size=0, magic=GNU),
                   file("ustar-name", b"u\n", mode=0o4755))),
        Case("gnu-longname-twice", "two GNU 'L' headers before one file",
             build(gnu_long("first-L"), gnu_long("second-L"), file("x", b"2\n"))),
        Case("gnu-longname", "GNU 'L' long name",
             build(gnu_long("n" * 200), file("short", b"l\n"))),
        Case("gnu-longlink", "GNU 'K' long link target",
             build(gnu_long("k" * 200, b"K"), header("sym", typeflag=b"2", linkname="short"))),
        Case("gnu-longname-rega-slash", "GNU 'L' name ending in '/' on a type NUL header with "
             "a size: Go makes a directory and reads the data as headers",
             build(gnu_long("gd/"), header("gd", typeflag=b"\x00", size=BLOCK * 2)
                   + hidden_header(), hi)),
        Case("gnu-longname-huge", "a GNU 'L' name of 1.1 MiB",
             build(gnu_long("q" * 1_100_000), file("x", b"x\n"))),
        # --- read alike by Go, differently by CPython's tarfile ----------------
        Case("cpython-b256-marker-81", "mode in base-256 behind marker 0x81 (tarfile: only "
             "0x80 and 0xFF; it ends the archive there)",
             build(hi, file("m81", b"m\n", mode=b"\x81" + bytes(5) + b"\x01\xed"))),
        Case("cpython-spaces-nul-digits", "uid field '  \\0' then digits: Go 10, tarfile 0",
             build(file("u", b"u\n", uid=b"  \x000012\x00"), hi)),
        Case("gnu-longlink-empty", "a GNU 'K' of zero bytes: Go keeps the ustar link name",
             build(header("././@LongLink", typeflag=b"K", size=0, magic=GNU),
                   header("sym", typeflag=b"2", linkname="hi"), hi)),
        Case("pax-linkpath-and-K", "a PAX linkpath and a GNU 'K' for one symlink",
             build(hi, pax([("linkpath", "from-pax")]), gnu_long("from-gnu", b"K"),
                   header("sym", typeflag=b"2", linkname="short"))),
        Case("pax-mtime-empty", "an empty PAX mtime (tarfile sets 0, Go keeps the header's)",
             build(pax([("mtime", "")]), file("t", b"t\n"), hi)),
        Case("rega-prefix-slash", "type NUL, empty name field, ustar prefix: Go a directory "
             "'pfx/', tarfile a file whose data Go reads as a header",
             build(header("", typeflag=b"\x00", size=BLOCK, tail=b"pfx") + hidden_header(), hi)),
        # --- format magic -----------------------------------------------------
        Case("magic-v7", "V7 headers (no magic) with bytes in the ustar prefix area",
             build(header("v7file", magic=V7, tail=b"prefixdir"),
                   header("v7two", magic=V7, size=2) + data_blocks(b"2\n"))),
        Case("magic-ustar-prefix", "ustar prefix joined to the name",
             build(file("inner", b"u\n", tail=b"opt/deep"))),
        Case("magic-star", "STAR trailer 'tar\\0' with a prefix",
             build(file("sf", b"s\n", tail=b"star".ljust(163, b"\x00") + b"tar\x00"))),
        Case("magic-star-garbage-atime", "STAR trailer with text in the atime field",
             build(file("sg", b"s\n",
                        tail=b"star".ljust(131, b"\x00") + b"notanumber\x00\x00" + b"\x00" * 20
                        + b"tar\x00"))),
        Case("magic-gnu-octal-atime", "GNU magic with an octal atime where ustar has its prefix",
             build(file("g", b"g\n", magic=GNU, tail=octal(MTIME, 12) + octal(MTIME, 12)))),
        Case("magic-gnu-text-prefix", "GNU magic with text (not octal) in the atime field",
             build(file("g", b"g\n", magic=GNU, tail=b"usr/share"))),
        Case("magic-version-xx", "magic 'ustar' with version 'xx'",
             build(file("m", b"m\n", magic=b"ustar\x00xx"))),
        Case("magic-unknown-prefix", "magic 'ustaR' (so V7 to Go) with a ustar prefix",
             build(file("m", b"m\n", magic=b"ustaR\x0000", tail=b"pre"))),
        # --- sparse -----------------------------------------------------------
        Case("sparse-gnu-S", "old GNU sparse 'S' member",
             build(header("sp", typeflag=b"S", size=BLOCK, magic=GNU,
                          tail=b"\x00" * 41 + octal(0, 12) + octal(BLOCK, 12)
                          + b"\x00" * 72 + b"\x00" + octal(4096, 12))
                   + data_blocks(b"s" * BLOCK))),
        Case("sparse-pax-1.0", "PAX GNU.sparse 1.0 member",
             build(pax([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                        ("GNU.sparse.name", "sparse1"), ("GNU.sparse.realsize", "2048")]),
                   header("GNUSparseFile.0/sparse1", size=BLOCK * 2)
                   + data_blocks(b"1\n0\n512\n") + data_blocks(b"d" * 512))),
        Case("sparse-pax-0.1", "PAX GNU.sparse 0.1 map on a file",
             build(pax([("GNU.sparse.name", "sparse01"), ("GNU.sparse.map", "0,4"),
                        ("GNU.sparse.size", "1024")]),
                   header("sp01", size=4) + data_blocks(b"abcd"))),
        # --- types ------------------------------------------------------------
        Case("rega-trailing-slash", "type NUL with a trailing slash is a directory",
             build(header("legacy/", typeflag=b"\x00", mode=0o750), file("legacy/f", b"f\n"))),
        Case("dir-with-size", "a directory header with size 1024: the blocks after it are "
             "headers to both readers",
             build(header("sizeddir/", typeflag=b"5", size=BLOCK * 2, mode=0o755),
                   hidden_header("sizeddir/inner"), hi)),
        Case("symlink-with-size", "a symlink header with a size",
             build(header("ln", typeflag=b"2", linkname="hi", size=BLOCK), hi)),
        Case("hardlink-with-size", "a hardlink header with a size",
             build(hi, header("hl", typeflag=b"1", linkname="hi", size=BLOCK), file("z", b"z\n"))),
        Case("fifo-with-size", "a fifo header with a size",
             build(header("pipe", typeflag=b"6", size=BLOCK), hi)),
        Case("contiguous-type-7", "type '7' (contiguous file)",
             build(header("cont", typeflag=b"7", size=3) + data_blocks(b"abc"))),
        Case("unknown-type", "type 'Z' (unknown) with data",
             build(header("zz", typeflag=b"Z", size=3) + data_blocks(b"abc"), hi)),
        Case("root-entry-file", "a regular file named './'",
             build(header("./", typeflag=b"0"), hi)),
        Case("chardev-pax-devnums", "a char device 1/3 (devmajor/devminor)",
             build(header("null", typeflag=b"3", mode=0o666, devmajor=1, devminor=3))),
        # --- names, links and overlay markers --------------------------------
        Case("name-normalization", "'./a//b/./c' and a directory './x/' with 'x/./y'",
             build(file("./a//b/./c", b"c\n"), directory("./x/"), file("x/./y", b"y\n"))),
        Case("name-dotdot", "a name with a '..' component",
             build(hi, file("d/../escaped", b"e\n"))),
        Case("name-non-utf8", "a name that is not UTF-8",
             build(hi, file(b"bad\xffname", b"b\n"))),
        Case("name-100-no-nul", "a 100-byte name without NUL, then the linkname field",
             build(header("n" * 100, typeflag=b"2", linkname="target"), hi)),
        Case("symlink-parent", "a symlink 'link' -> 'real' and a file 'link/f' through it",
             build(directory("real"), header("link", typeflag=b"2", linkname="real"),
                   file("link/f", b"f\n"))),
        Case("hardlink-pax-linkpath", "a hardlink whose target comes from a PAX linkpath",
             build(file("target", b"t\n"), pax([("linkpath", "target")]),
                   header("link", typeflag=b"1", linkname="wrong"))),
        Case("dir-under-later-symlink", "a directory 'x/y', then 'x' made a symlink to a "
             "missing 'd': containerd fails setting the directory's times",
             build(directory("x/y", mode=0o711), header("x", typeflag=b"2", linkname="d"))),
        Case("dir-replaced-by-self-symlink", "a directory 'a', then 'a' a symlink to itself",
             build(directory("a"), header("a", typeflag=b"2", linkname="a"), hi)),
        Case("pax-trusted-xattr", "SCHILY.xattr.trusted.overlay.opaque on a directory",
             build(pax([("SCHILY.xattr.trusted.overlay.opaque", "y")]), directory("dir"))),
        Case("pax-capability-empty", "an empty SCHILY.xattr.security.capability record",
             build(pax([("SCHILY.xattr.security.capability", "")]), file("c", b"c\n"))),
        Case("pax-user-xattr-on-symlink", "a user.* xattr on a symlink (Linux refuses it)",
             build(hi, pax([("SCHILY.xattr.user.note", "v")]),
                   header("ln", typeflag=b"2", linkname="hi"))),
        Case("whiteout-as-directory", "a whiteout written as a directory header '.wh.gone/'",
             build(directory(".wh.gone"), hi)),
        Case("opaque-as-directory", "an opaque marker written as a directory header",
             build(directory("od"), directory("od/.wh..wh..opq"), hi)),
        Case("whiteout-after-file", "a file, then a whiteout of it in the same layer",
             build(file("victim", b"v\n"), file(".wh.victim", b""), hi)),
        Case("whiteout-pax-name", "a PAX path '.wh.victim' over the ustar name 'innocent'",
             build(pax([("path", ".wh.victim")]), file("innocent", b""), hi)),
        Case("opaque-after-file", "a file in a directory, then that directory's opaque marker",
             build(directory("od"), file("od/kept", b"k\n"), file("od/.wh..wh..opq", b""))),
        # --- archive structure ------------------------------------------------
        Case("truncated-mid-header", "the archive stops 100 bytes into the second header",
             (hi + file("b", b"b\n"))[: len(hi) + 100]),
        Case("truncated-mid-data", "the archive stops inside the second file's data",
             hi + header("b", size=4000) + b"x" * 1000),
        Case("no-end-marker", "members and no end-of-archive blocks",
             build(hi, file("b", b"b\n"), trailer=b"")),
        Case("one-zero-block", "members and one zero block",
             build(hi, trailer=b"\x00" * BLOCK)),
        Case("trailing-garbage", "bytes that are not zero after the end marker",
             build(hi, trailer=end() + b"garbage after the end\n")),
        Case("trailing-header", "a valid setuid file header after the end marker",
             build(hi, trailer=end() + hidden_header())),
        Case("zero-then-header", "one zero block, then a header",
             build(hi, b"\x00" * BLOCK + hidden_header())),
        Case("truncated-in-padding", "the last file's data is whole, its padding cut short",
             hi + header("b", size=3) + b"abc" + b"\x00" * 100),
        Case("no-padding-at-end", "the stream ends right after the last file's data",
             hi + header("b", size=3) + b"abc"),
        Case("end-partial-zero-block", "members, then 300 zero bytes",
             build(hi, trailer=b"\x00" * 300)),
        Case("end-one-and-partial-zero-block", "members, one zero block and 100 zero bytes",
             build(hi, trailer=b"\x00" * (BLOCK + 100))),
        Case("end-marker-then-partial-zeros", "the end marker and 100 more zero bytes",
             build(hi, trailer=end() + b"\x00" * 100)),
        Case("empty-stream", "zero bytes", b""),
        Case("only-end-marker", "just the end marker", end()),
    ]
    # fmt: on
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    return cases


CASES: list[Case] = _cases()


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) every ``.tar`` and ``corpus.json``."""
    check = "--check" in argv
    index = {
        c.name: {
            "about": c.about,
            "size": len(c.data),
            "sha256": hashlib.sha256(c.data).hexdigest(),
        }
        for c in CASES
    }
    outputs = {HERE / f"{c.name}.tar": c.data for c in CASES}
    outputs[HERE / "corpus.json"] = (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()
    stale = [p for p, data in outputs.items() if not p.exists() or p.read_bytes() != data]
    if check:
        for path in stale:
            print(f"stale: {path.name}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_bytes(outputs[path])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
