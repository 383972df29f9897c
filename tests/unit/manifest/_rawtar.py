# SPDX-License-Identifier: Apache-2.0
"""Build tar headers byte by byte, including the malformed ones tarfile won't write.

Every field is set explicitly so a test states exactly which bytes Go's
``archive/tar`` would see. Offsets follow Go's ``archive/tar/format.go``.
"""

from __future__ import annotations

BLOCK = 512
END = bytes(2 * BLOCK)


def octal(value: int, width: int) -> bytes:
    """``value`` as zero-padded octal digits and a NUL, ``width`` bytes."""
    return b"%0*o\x00" % (width - 1, value)


def base256(value: int, width: int) -> bytes:
    """``value`` in GNU base-256 (two's complement, top bit set)."""
    data = bytearray(value.to_bytes(width, "big", signed=True))
    data[0] |= 0x80
    return bytes(data)


def sums(block: bytes) -> tuple[int, int]:
    """The unsigned and signed checksums of ``block`` (checksum as spaces)."""
    blanked = block[:148] + b" " * 8 + block[156:]
    return sum(blanked), sum(c - 256 if c >= 128 else c for c in blanked)


def header(
    name: bytes = b"f",
    *,
    typeflag: bytes = b"0",
    size: int | bytes = 0,
    mode: int | bytes = 0o644,
    uid: int | bytes = 0,
    gid: int | bytes = 0,
    mtime: int | bytes = 1_700_000_000,
    link: bytes = b"",
    magic: bytes = b"ustar\x00",
    version: bytes = b"00",
    prefix: bytes = b"",
    devmajor: int | bytes = 0,
    devminor: int | bytes = 0,
    raw: dict[int, bytes] | None = None,
    checksum: str = "octal",
) -> bytes:
    """One 512-byte header; ints are written in octal, bytes as given.

    Args:
        name: the name field.
        typeflag: the type byte.
        size: the size field.
        mode: the mode field.
        uid: the uid field.
        gid: the gid field.
        mtime: the mtime field.
        link: the link name field.
        magic: bytes 257-262.
        version: bytes 263-264.
        prefix: the USTAR prefix field (bytes 345-499).
        devmajor: the device major field.
        devminor: the device minor field.
        raw: more bytes to write at given offsets, last.
        checksum: how the checksum field is written: ``octal`` (six digits,
            NUL, space: tarfile and GNU tar), ``go`` (seven digits, NUL),
            ``nul-led`` (NUL, six digits, space), ``spaces`` (spaces, digits,
            space), ``signed`` (the signed sum), ``wrong`` (sum plus one),
            ``none`` (leave the field as written).
    """
    block = bytearray(BLOCK)

    def put(offset: int, width: int, value: int | bytes) -> None:
        data = octal(value, width) if isinstance(value, int) else value
        assert len(data) <= width, (offset, data)
        block[offset : offset + len(data)] = data

    put(0, 100, name)
    put(100, 8, mode)
    put(108, 8, uid)
    put(116, 8, gid)
    put(124, 12, size)
    put(136, 12, mtime)
    block[156:157] = typeflag
    put(157, 100, link)
    block[257:263] = magic
    block[263:265] = version
    put(329, 8, devmajor)
    put(337, 8, devminor)
    put(345, 155, prefix)
    for offset, data in (raw or {}).items():
        block[offset : offset + len(data)] = data
    unsigned, signed = sums(bytes(block))
    field = {
        "octal": b"%06o\x00 " % unsigned,
        "go": b"%07o\x00" % unsigned,
        "nul-led": b"\x00%06o " % unsigned,
        "spaces": b"  %05o " % unsigned,
        "signed": b"%06o\x00 " % signed if signed >= 0 else b"",
        "wrong": b"%06o\x00 " % (unsigned + 1),
        "none": bytes(block[148:156]),
    }[checksum]
    assert len(field) == 8, checksum
    block[148:156] = field
    return bytes(block)


def data(content: bytes) -> bytes:
    """``content`` padded to whole blocks."""
    return content + bytes(-len(content) % BLOCK)


def entry(name: bytes, content: bytes = b"", **kw: object) -> bytes:
    """A regular file: header plus padded data."""
    return header(name, size=len(content), **kw) + data(content)  # type: ignore[arg-type]


def pax_record(key: bytes, value: bytes) -> bytes:
    """One PAX record with its correct decimal length."""
    body = b" " + key + b"=" + value + b"\n"
    size = len(body) + 1
    while len(b"%d" % size) + len(body) != size:
        size += 1
    return b"%d" % size + body


def pax(records: bytes, **kw: object) -> bytes:
    """A PAX ('x') header carrying ``records``."""
    return header(b"PaxHeader/f", typeflag=b"x", size=len(records), **kw) + data(records)  # type: ignore[arg-type]


def gnu_long(kind: bytes, value: bytes) -> bytes:
    """A GNU long-name ('L') or long-link ('K') header, GNU magic."""
    return header(
        b"././@LongLink", typeflag=kind, size=len(value), magic=b"ustar ", version=b" \x00"
    ) + data(value)
