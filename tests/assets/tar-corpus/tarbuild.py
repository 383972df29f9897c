# SPDX-License-Identifier: Apache-2.0
"""Tar headers assembled byte by byte, for the corpus and the tests that mutate it.

No ``tarfile``: every field is written here, so a case controls exactly the
bytes two tar readers could read differently (checksum padding, base-256
numbers, magic, PAX records). Ints become ustar octal, bytes go in verbatim.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "BLOCK",
    "GNU",
    "MTIME",
    "USTAR",
    "V7",
    "base256",
    "build",
    "checksums",
    "data_blocks",
    "directory",
    "end",
    "file",
    "gnu_long",
    "header",
    "octal",
    "pax",
    "pax_record",
    "set_checksum",
]

BLOCK = 512
MTIME = 1_700_000_000

USTAR = b"ustar\x0000"
GNU = b"ustar  \x00"
V7 = b"\x00" * 8


def octal(value: int, width: int) -> bytes:
    """``value`` as zero-padded octal digits ending in one NUL (the ustar form)."""
    digits = f"{value:0{width - 1}o}".encode()
    if len(digits) != width - 1:
        raise ValueError(f"{value} does not fit {width} bytes of octal")
    return digits + b"\x00"


def base256(value: int, width: int) -> bytes:
    """``value`` in GNU base-256: the top bit of the first byte set, two's complement."""
    raw = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def _field(value: int | bytes, width: int) -> bytes:
    raw = octal(value, width) if isinstance(value, int) else value
    if len(raw) > width:
        raise ValueError(f"field of {len(raw)} bytes does not fit {width}")
    return raw.ljust(width, b"\x00")


def checksums(block: bytes) -> tuple[int, int]:
    """The (unsigned, signed) byte sums with the checksum field read as spaces."""
    raw = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(raw)
    signed = sum(b - 256 if b > 127 else b for b in raw)
    return unsigned, signed


def set_checksum(block: bytes, style: str = "gnu", *, signed: bool = False) -> bytes:
    """Return ``block`` with its checksum field written in ``style``.

    Styles: ``gnu`` six digits, NUL, space (GNU tar, Go); ``nul`` seven digits
    and a NUL; ``space`` leading and trailing spaces; ``nul-led`` a leading
    NUL (Go trims it, CPython's tarfile reads 0); ``plus`` a leading ``+``;
    ``0o`` a ``0o`` prefix; ``underscore`` a ``_`` between digits; ``wrong``
    the right digits plus one.
    """
    unsigned, signed_sum = checksums(block)
    value = signed_sum if signed else unsigned
    forms: dict[str, Callable[[int], bytes]] = {
        "gnu": lambda v: f"{v:06o}".encode() + b"\x00 ",
        "nul": lambda v: f"{v:07o}".encode() + b"\x00",
        "space": lambda v: f"  {v:05o} ".encode(),
        "nul-led": lambda v: b"\x00" + f"{v:06o}".encode() + b" ",
        "plus": lambda v: f"+{v:05o}".encode() + b"\x00 ",
        "0o": lambda v: f"0o{v:05o}".encode() + b"\x00",
        "underscore": lambda v: (lambda s: s[:2] + "_" + s[2:])(f"{v:05o}").encode() + b"\x00 ",
        "wrong": lambda v: f"{v + 1:06o}".encode() + b"\x00 ",
    }
    field = forms[style](value)
    if len(field) != 8:
        raise ValueError(f"checksum style {style!r} gave {field!r}")
    return block[:148] + field + block[156:]


def header(
    name: str | bytes,
    *,
    typeflag: bytes = b"0",
    size: int | bytes = 0,
    mode: int | bytes = 0o644,
    uid: int | bytes = 0,
    gid: int | bytes = 0,
    mtime: int | bytes = MTIME,
    linkname: str | bytes = b"",
    magic: bytes = USTAR,
    uname: bytes = b"root",
    gname: bytes = b"root",
    devmajor: int | bytes = 0,
    devminor: int | bytes = 0,
    tail: bytes = b"",
    checksum: str = "gnu",
    signed: bool = False,
) -> bytes:
    """One 512-byte header block; ints are written as ustar octal, bytes verbatim.

    ``tail`` fills bytes 345..511: the ustar prefix, GNU atime/ctime/sparse
    area or STAR prefix and trailer, depending on ``magic``.
    """
    raw_name = name.encode() if isinstance(name, str) else name
    raw_link = linkname.encode() if isinstance(linkname, str) else linkname
    block = (
        _field(raw_name, 100)
        + _field(mode, 8)
        + _field(uid, 8)
        + _field(gid, 8)
        + _field(size, 12)
        + _field(mtime, 12)
        + b" " * 8
        + typeflag
        + _field(raw_link, 100)
        + magic
        + _field(uname, 32)
        + _field(gname, 32)
        + _field(devmajor, 8)
        + _field(devminor, 8)
        + _field(tail, 167)
    )
    assert len(block) == BLOCK, len(block)
    return set_checksum(block, checksum, signed=signed)


def data_blocks(data: bytes) -> bytes:
    """``data`` padded with NULs to a whole number of blocks."""
    return data + b"\x00" * (-len(data) % BLOCK)


def file(name: str | bytes, data: bytes, **kw: object) -> bytes:
    """A regular file member: header and padded data."""
    return header(name, size=len(data), **kw) + data_blocks(data)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755, **kw: object) -> bytes:
    """A directory member."""
    return header(name.rstrip("/") + "/", typeflag=b"5", mode=mode, **kw)  # type: ignore[arg-type]


def pax_record(key: str | bytes, value: str | bytes) -> bytes:
    """One ``"%d %s=%s\\n"`` PAX record whose length counts its own digits."""
    k = key.encode() if isinstance(key, str) else key
    v = value.encode() if isinstance(value, str) else value
    body = b" " + k + b"=" + v + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(
    records: list[tuple[str | bytes, str | bytes]] | bytes,
    *,
    typeflag: bytes = b"x",
    name: str = "PaxHeaders/entry",
) -> bytes:
    """A PAX extended ('x') or global ('g') header and its records."""
    body = records if isinstance(records, bytes) else b"".join(pax_record(k, v) for k, v in records)
    return header(name, typeflag=typeflag, size=len(body)) + data_blocks(body)


def gnu_long(value: str | bytes, typeflag: bytes = b"L") -> bytes:
    """A GNU long name ('L') or long link ('K') header, value NUL-terminated."""
    raw = (value.encode() if isinstance(value, str) else value) + b"\x00"
    return header("././@LongLink", typeflag=typeflag, size=len(raw), magic=GNU) + data_blocks(raw)


def end() -> bytes:
    """The end-of-archive marker: two zero blocks."""
    return b"\x00" * (2 * BLOCK)


def build(*members: bytes, trailer: bytes | None = None) -> bytes:
    """Concatenate ``members`` and the end marker (or ``trailer`` instead of it)."""
    return b"".join(members) + (end() if trailer is None else trailer)
