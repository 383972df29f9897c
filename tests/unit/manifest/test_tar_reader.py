# SPDX-License-Identifier: Apache-2.0
"""TarReader reads each hand-built header as Go 1.19's archive/tar does, or refuses it.

The expected readings come from Go's sources (archive/tar reader.go,
strconv.go, format.go); tests/integration/manifest checks the corpus against
umoci and containerd themselves.
"""

from __future__ import annotations

import io
import re

import pytest

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._tarfields import parse_pax
from attestor.manifest._tarreader import TarHeader, TarReader
from tests.unit.manifest._rawtar import (
    END,
    base256,
    data,
    entry,
    gnu_long,
    header,
    pax,
    pax_record,
)

CAP = 64 * 1024


def read(raw: bytes, *, cap: int = CAP) -> list[tuple[TarHeader, bytes]]:
    """Every entry with its data, then the end-of-stream check."""
    reader = TarReader(io.BytesIO(raw), max_meta_bytes=cap)
    out = []
    while (hdr := reader.next()) is not None:
        content = b""
        while chunk := reader.read_data(7):  # odd chunk size on purpose
            content += chunk
        out.append((hdr, content))
    reader.finish()
    return out


def one(raw: bytes) -> TarHeader:
    """The single entry of ``raw`` (plus an end marker)."""
    ((hdr, _),) = read(raw + END)
    return hdr


def refused(raw: bytes, reason: str, *, cap: int = CAP) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        read(raw, cap=cap)


# -- checksums ----------------------------------------------------------------


@pytest.mark.parametrize("style", ["octal", "go", "spaces"])
def test_checksum_field_padding_is_trimmed_like_go(style: str) -> None:
    # Go: bytes.Trim(field, " \x00"), cut at a NUL, then octal.
    hdr = one(entry(b"a", b"xyz", checksum=style))
    assert (hdr.name, hdr.size, hdr.typeflag) == ("a", 3, "0")


def test_nul_led_checksum_is_refused() -> None:
    # Go trims the NUL; tarfile cuts at it, reads 0 and ends its archive.
    refused(entry(b"a", b"xyz", checksum="nul-led") + END, "ambiguous checksum field")


def test_signed_checksum_is_accepted() -> None:
    # Bytes >= 0x80 (UTF-8 names) make the signed and unsigned sums differ.
    hdr = one(entry("café".encode(), b"", checksum="signed"))
    assert hdr.name == "café"


@pytest.mark.parametrize(
    "field",
    [
        b"0o12345\x00",
        b"+012345\x00",
        b"01_2345\x00",
        b"01 2345\x00",
        b"\x80\x00\x00\x00\x00\x00\x01\x00",
    ],
    ids=["0o-prefix", "plus-sign", "underscore", "inner-space", "base-256"],
)
def test_checksum_that_strconv_would_not_parse_is_refused(field: bytes) -> None:
    refused(header(b"a", raw={148: field}, checksum="none") + END, "bad checksum")


def test_wrong_checksum_is_refused() -> None:
    refused(entry(b"a") + header(b"b", checksum="wrong") + END, "at byte 512: bad checksum")


# -- numbers ------------------------------------------------------------------


def test_base256_numbers() -> None:
    hdr = one(
        header(b"b", uid=base256(2**30, 8), gid=base256(70_000, 8), mode=base256(0o4755, 8))
        + END[:0]
    )
    assert (hdr.uid, hdr.gid, hdr.mode) == (2**30, 70_000, 0o4755)
    big = 9 * 2**30  # over the 8 GiB octal size field
    reader = TarReader(io.BytesIO(header(b"big", size=base256(big, 12))), max_meta_bytes=CAP)
    first = reader.next()
    assert first is not None and first.size == big


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"uid": base256(-1, 8)}, "uid -1 out of range"),
        ({"gid": base256(-2, 8)}, "gid -2 out of range"),
        ({"uid": base256(2**32 - 1, 8)}, "uid 4294967295 out of range"),  # lchown's -1
        ({"mode": base256(-1, 8)}, "mode -1 out of range"),
        ({"size": base256(-512, 12)}, "size field -512 out of range"),
        ({"size": b"\x80" + b"\xff" * 11}, "unparsable size field"),  # >= 2**63
        ({"mode": b"0644x\x00\x00\x00"}, "unparsable mode field"),
        ({"uid": b"00 1750\x00"}, "unparsable uid field"),
        ({"mtime": b"yesterday\x00\x00\x00"}, "unparsable mtime field"),
        ({"devmajor": b"zz\x00"}, "unparsable devmajor field"),
        ({"typeflag": b"3", "devmajor": 4096, "devminor": 1}, "device major 4096 out of range"),
        ({"typeflag": b"4", "devmajor": 8, "devminor": 2**20}, "device minor 1048576 out of range"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_numbers_outside_what_containerd_applies_are_refused(
    fields: dict[str, object], reason: str
) -> None:
    refused(header(b"n", **fields) + END, reason)  # type: ignore[arg-type]


def test_octal_fields_with_space_padding_read_like_go() -> None:
    # Spaces are trimmed, a NUL ends the digits (Go and tarfile alike).
    hdr = one(
        header(b"p", size=b"  00000003\x00", uid=b"  1750 \x00", mode=b"0755\x00777") + data(b"abc")
    )
    assert (hdr.size, hdr.uid, hdr.mode) == (3, 0o1750, 0o755)


def test_nul_led_octal_fields_are_refused() -> None:
    # Go trims leading NULs and reads 3; tarfile cuts at the first NUL: 0.
    refused(
        header(b"p", size=b"\x00\x00\x0000000003\x00") + data(b"abc") + END,
        "ambiguous size field b'\\x00\\x00\\x0000000003\\x00': Go's archive/tar reads 3, "
        "CPython's tarfile reads 0",
    )


# -- formats ------------------------------------------------------------------


def test_ustar_prefix_is_joined_and_gnu_has_none() -> None:
    assert one(header(b"inner", prefix=b"opt/deep")).name == "opt/deep/inner"
    # In a GNU header bytes 345-368 are atime and ctime for Go, a prefix for
    # tarfile: refused unless empty.
    assert one(header(b"g", magic=b"ustar ", version=b" \x00")).name == "g"
    gnu = header(b"g", magic=b"ustar ", version=b" \x00", raw={345: b"00000000017\x00"})
    refused(gnu + END, "ambiguous GNU header: bytes where USTAR has its prefix")


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (header(b"v", magic=bytes(6), version=bytes(2)), "V7 (pre-POSIX) headers"),
        (header(b"v", magic=b"ustar ", version=b"00"), "V7 (pre-POSIX) headers"),
        (header(b"s", raw={508: b"tar\x00"}), "STAR headers"),
        (
            header(b"g", magic=b"ustar ", version=b" \x00", raw={357: b"dir/prefix"}),
            "GNU header with an unparsable atime or ctime",
        ),
    ],
    ids=["v7", "gnu-magic-ustar-version", "star", "gnu-pre-go1.8-fallback"],
)
def test_formats_go_reads_with_special_rules_are_refused(block: bytes, reason: str) -> None:
    refused(block + END, reason)


def test_ustar_magic_with_any_version_is_ustar() -> None:
    assert one(header(b"m", version=b"xx")).name == "m"


# -- entry types and data -------------------------------------------------------


def test_nul_typeflag_with_trailing_slash_is_a_directory_without_data() -> None:
    # Go turns it into TypeDir after the size was set up, so the "data" is
    # read as the next header.
    hidden = header(b"d/hidden", size=0)
    got = read(header(b"d/", typeflag=b"\x00", size=512) + hidden + END)
    assert [(h.name, h.typeflag, h.size) for h, _ in got] == [("d/", "5", 0), ("d/hidden", "0", 0)]


def test_nul_typeflag_without_slash_is_a_regular_file() -> None:
    ((hdr, content),) = read(header(b"f", typeflag=b"\x00", size=2) + data(b"hi") + END)
    assert (hdr.typeflag, content) == ("0", b"hi")


@pytest.mark.parametrize("flag", [b"1", b"2", b"3", b"4", b"5", b"6"])
def test_header_only_types_have_no_data_whatever_size_says(flag: bytes) -> None:
    first = header(b"x", typeflag=flag, size=512, link=b"t", devmajor=1, devminor=3)
    got = read(first + entry(b"next", b"n") + END)
    assert [(h.name, h.size, c) for h, c in got] == [("x", 0, b""), ("next", 1, b"n")]


@pytest.mark.parametrize("flag", [b"7", b"S", b"A", b"D", b"M", b"N", b"V", b"Z"])
def test_types_containerd_does_not_unpack_are_refused(flag: bytes) -> None:
    refused(header(b"t", typeflag=flag) + END, f"unsupported entry type {flag.decode()!r}")


def test_global_pax_header_is_refused() -> None:
    refused(header(b"g", typeflag=b"g", size=0) + END, "global PAX headers ('g')")


# -- PAX and GNU long names ----------------------------------------------------


def test_pax_records_override_the_header() -> None:
    records = (
        pax_record(b"path", b"very/" + b"p" * 200)
        + pax_record(b"linkpath", b"t" * 150)
        + pax_record(b"uid", b"100000")
        + pax_record(b"gid", b"200000")
        + pax_record(b"mtime", b"1700000000.123456789")
        + pax_record(b"SCHILY.xattr.security.capability", b"\x01\x00\x00\x02")
        + pax_record(b"SCHILY.xattr.user.empty", b"")
        + pax_record(b"comment", b"ignored \x00 too")
    )
    hdr = one(pax(records) + header(b"short", typeflag=b"2", link=b"l", uid=1, gid=2))
    assert hdr == TarHeader(
        name="very/" + "p" * 200,
        linkname="t" * 150,
        typeflag="2",
        size=0,
        mode=0o644,
        uid=100000,
        gid=200000,
        devmajor=0,
        devminor=0,
        xattrs={b"security.capability": b"\x01\x00\x00\x02", b"user.empty": b""},
    )


def test_pax_size_overrides_the_header_size() -> None:
    # The header says 512 bytes; PAX says 0, so the next block is a header.
    got = read(
        pax(pax_record(b"size", b"0")) + header(b"carrier", size=512) + entry(b"hidden", b"h") + END
    )
    assert [(h.name, h.size, c) for h, c in got] == [("carrier", 0, b""), ("hidden", 1, b"h")]


@pytest.mark.parametrize("key", [b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime"])
def test_empty_pax_values_tarfile_applies_are_refused(key: bytes) -> None:
    # Go keeps the header's field; tarfile sets "" or 0.
    refused(pax(pax_record(key, b"")) + entry(b"kept", b"abc") + END, f"empty PAX {key.decode()}")


def test_other_empty_pax_values_are_ignored() -> None:
    hdr = one(pax(pax_record(b"comment", b"") + pax_record(b"atime", b"")) + entry(b"k", b"abc"))
    assert (hdr.name, hdr.size) == ("k", 3)


def test_later_pax_records_and_headers_win() -> None:
    twice = pax_record(b"path", b"first") + pax_record(b"path", b"second")
    assert one(pax(twice) + header(b"h")).name == "second"
    # An empty duplicate erases the earlier value: Go then keeps the header's
    # name, tarfile takes "".
    erased = pax_record(b"path", b"first") + pax_record(b"path", b"")
    refused(pax(erased) + header(b"h") + END, "empty PAX path")
    # A second 'x' header replaces the first in Go; tarfile lets the first win.
    refused(
        pax(pax_record(b"path", b"one") + pax_record(b"uid", b"7"))
        + pax(pax_record(b"path", b"two"))
        + header(b"h")
        + END,
        "two PAX ('x') headers for one entry",
    )


def test_gnu_long_names_beside_pax_names_are_refused_in_either_order() -> None:
    # Go lets the GNU name win; tarfile the meta header it read first.
    for meta in (
        pax(pax_record(b"path", b"from-pax")) + gnu_long(b"L", b"from-gnu"),
        gnu_long(b"L", b"from-gnu") + pax(pax_record(b"path", b"from-pax")),
    ):
        refused(meta + header(b"h") + END, "a PAX path and a GNU long name for one entry")
    meta = pax(pax_record(b"linkpath", b"p")) + gnu_long(b"K", b"g")
    refused(meta + header(b"s", typeflag=b"2") + END, "a PAX linkpath and a GNU long link")
    # Different fields from each kind are fine.
    hdr = one(
        pax(pax_record(b"uid", b"9"))
        + gnu_long(b"L", b"long-name")
        + gnu_long(b"K", b"target\x00junk")
        + header(b"s", typeflag=b"2", link=b"x")
    )
    assert (hdr.name, hdr.linkname, hdr.uid) == ("long-name", "target", 9)  # cut at a NUL
    # A second long name (even an empty one, which Go ignores) is refused.
    refused(
        gnu_long(b"L", b"first") + gnu_long(b"L", b"\x00") + header(b"h") + END,
        "two GNU long name ('L') headers for one entry",
    )


def test_nul_type_made_a_directory_by_a_long_name_or_pax_path_is_refused() -> None:
    # Go judges the final name ("gd/": a directory, no data); tarfile the
    # 100-byte name field ("gd": a file with 512 bytes of data).
    reason = "a NUL-typed entry is a directory for Go's archive/tar and a file for CPython's"
    for meta in (gnu_long(b"L", b"gd/"), pax(pax_record(b"path", b"gd/"))):
        refused(meta + header(b"gd", typeflag=b"\x00", size=512) + header(b"x") + END, reason)
    refused(header(b"d/", typeflag=b"\x00") + pax(b"") + END, "with no entry after it")
    refused(gnu_long(b"L", b"f") + header(b"d/", typeflag=b"\x00") + END, reason)
    assert one(gnu_long(b"L", b"gd/") + header(b"gd/", typeflag=b"\x00")).typeflag == "5"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"9 a=b\n", "bad length 9"),
        (b"4 a=\n", "bad length 4"),
        (b"+6 a=b\n", "bad length field"),
        (b"06 a=b\n", "no newline"),  # leading zero is fine; the record is short
        (b"6 a=bc", "no newline"),
        (b"5 ab\n", "no key"),
        (b"6 =bc\n", "no key"),
        (pax_record(b"path", b"a\x00b"), "NUL in b'path'"),
        (pax_record(b"k\x00y", b"v"), "NUL in"),
        (b"12345678901 a=b\n", "bad length field"),
        (b"abc", "bad length field"),
        (pax_record(b"GNU.sparse.x", b""), "sparse files"),
    ],
)
def test_malformed_pax_records_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        parse_pax(body)[0]
    refused(pax(body) + header(b"h") + END, "at byte 0:")


def test_nul_in_other_values_is_allowed_as_go_does() -> None:
    assert parse_pax(pax_record(b"k", b"a\x00b"))[0] == {b"k": b"a\x00b"}
    assert parse_pax(b"06 a=\n")[0] == {b"a": b""}  # leading zeros in the length


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (pax_record(b"uid", b"-1"), "PAX record uid: bad number"),
        (pax_record(b"gid", b"1_000"), "PAX record gid: bad number"),
        (pax_record(b"size", b"9223372036854775808"), "PAX record size: bad number"),
        (pax_record(b"uid", b"4294967295"), "uid 4294967295 out of range"),
        (pax_record(b"mtime", b"yesterday"), "PAX record mtime: bad time"),
        (pax_record(b"atime", b"1.2.3"), "PAX record atime: bad time"),
        (pax_record(b"path", b"\xff\xfe"), "name is not UTF-8"),
        (pax_record(b"GNU.sparse.major", b"1"), "sparse files"),
    ],
)
def test_pax_values_go_rejects_or_we_cannot_match_are_refused(record: bytes, reason: str) -> None:
    refused(pax(record) + header(b"h") + END, reason)


def test_negative_header_size_is_refused_even_when_pax_replaces_it() -> None:
    # Go's handleRegularFile fails on the header's own size first.
    layer = pax(pax_record(b"size", b"3")) + header(b"f", size=base256(-1, 12)) + data(b"abc")
    refused(layer + END, "size field -1 out of range")


def test_sparse_type_is_refused() -> None:
    refused(header(b"s", typeflag=b"S", magic=b"ustar ", version=b" \x00") + END, "'S'")


def test_non_utf8_names_are_refused() -> None:
    refused(header(b"f\xff") + END, "name is not UTF-8")
    refused(header(b"l", typeflag=b"2", link=b"\xc3") + END, "link name is not UTF-8")
    refused(gnu_long(b"L", b"\xe2\x82") + header(b"h") + END, "name is not UTF-8")


def test_meta_header_with_no_entry_after_it_is_refused() -> None:
    refused(pax(pax_record(b"path", b"p")) + END, "with no entry after it")
    refused(gnu_long(b"L", b"name"), "with no entry after it")


# -- size caps ------------------------------------------------------------------


class _NoReadPast(io.BytesIO):
    """Fails the test if anything past ``limit`` is read."""

    def __init__(self, raw: bytes, limit: int) -> None:
        super().__init__(raw)
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        out = super().read(size)
        assert self.tell() <= self.limit, "read past the header"
        return out


@pytest.mark.parametrize("kind", [b"x", b"L", b"K"])
def test_long_meta_header_is_refused_before_its_body_is_read(kind: bytes) -> None:
    big = header(b"@", typeflag=kind, size=CAP + 1) + bytes(CAP + 1024)
    reader = TarReader(_NoReadPast(big, 512), max_meta_bytes=CAP)
    with pytest.raises(
        TooLarge, match=f"'{kind.decode()}' header of {CAP + 1} bytes exceeds {CAP}"
    ):
        reader.next()


def test_cap_never_exceeds_gos_one_mebibyte() -> None:
    big = header(b"@", typeflag=b"x", size=2**20 + 1)
    with pytest.raises(TooLarge, match="exceeds 1048576"):
        TarReader(_NoReadPast(big, 512), max_meta_bytes=2**30).next()


def test_meta_headers_in_a_row_and_pax_records_per_archive_are_capped() -> None:
    # At most one of each kind before an entry, so at most three.
    three = pax(pax_record(b"uid", b"1")) + gnu_long(b"L", b"n") + gnu_long(b"K", b"t")
    assert one(three + header(b"h", typeflag=b"2")).name == "n"
    refused(three + gnu_long(b"K", b"u") + header(b"h") + END, "two GNU long link ('K')")
    records = pax_record(b"k", b"v") * 6
    layer = pax(records) + header(b"a") + pax(records) + header(b"b") + END
    reader = TarReader(io.BytesIO(layer), max_meta_bytes=CAP, max_pax_records=11)
    assert reader.next() is not None
    with pytest.raises(TooLarge, match="at byte 1536: more than 5 PAX records"):
        reader.next()


def test_pax_parsing_is_linear() -> None:
    import time

    many = pax_record(b"k", b"") * (60_000 // 6)  # 10k tiny records
    start = time.perf_counter()
    assert parse_pax(many)[0] == {b"k": b""}
    one_record = pax_record(b"path", b"x" * 65_000)
    assert parse_pax(one_record)[0][b"path"] == b"x" * 65_000
    with pytest.raises(InvalidInput):
        parse_pax(b"1" * 65_000)[0]  # all length digits, no space
    assert time.perf_counter() - start < 1.0


# -- end of archive and truncation ------------------------------------------------


def test_archive_ends() -> None:
    body = entry(b"a", b"1")
    assert [h.name for h, _ in read(body)] == ["a"]  # no end marker: Go accepts it
    assert [h.name for h, _ in read(body + END[:512])] == ["a"]  # one zero block
    assert [h.name for h, _ in read(body + END + bytes(10_000))] == ["a"]  # zero padding
    assert read(b"") == []


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (END + b"\x00" * 100 + b"X", "non-zero bytes after the end-of-archive marker"),
        (END + entry(b"hidden", b"h"), "non-zero bytes after the end-of-archive marker"),
        (END[:512] + entry(b"hidden", b"h"), "a zero block followed by a non-zero one"),
        (END[:512] + bytes(100), "truncated after a zero block"),
        (header(b"b")[:300], "truncated in a header"),
    ],
    ids=["garbage", "header-after-end", "zero-then-header", "zero-then-partial", "partial-header"],
)
def test_bad_archive_ends_are_refused(tail: bytes, reason: str) -> None:
    refused(entry(b"a", b"1") + tail, reason)


def test_truncated_data_and_padding_are_refused() -> None:
    whole = entry(b"a", b"x" * 600)
    refused(whole[: 512 + 300], "truncated in file data")
    # Go takes an end inside the padding for the end of the archive.
    refused(whole[: 512 + 700], "truncated in block padding")
    refused(pax(pax_record(b"path", b"p"))[: 512 + 5], "truncated in a PAX or GNU long-name header")


def test_short_reads_from_the_stream_are_not_truncation() -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(min(size, 100) if size and size > 0 else size)

    reader = TarReader(Trickle(entry(b"a", b"x" * 1000) + END), max_meta_bytes=CAP)
    hdr = reader.next()
    assert hdr is not None and hdr.name == "a"
    assert reader.read_data() == b"x" * 1000
    assert reader.next() is None
    reader.finish()
