# SPDX-License-Identifier: Apache-2.0
"""The fields of one tar header and of PAX records, parsed by Go 1.19's rules.

Helpers of :mod:`attestor.manifest._tarreader` (see its docstring for why
the reader is hand-written): each function mirrors one function of Go's
``archive/tar`` (``parseString``, ``parseOctal``, ``parseNumeric``,
``getFormat``, ``readHeader``, ``parsePAXRecord``, ``parsePAXTime``), except
that inputs Go may read in more than one way, that no layer writer
produces, or that CPython's ``tarfile`` (the reader of Python-based
scanners) reads differently from Go, are refused with
:class:`~attestor.errors.InvalidInput`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from attestor.errors import InvalidInput, TooLarge

__all__ = [
    "INT64_MAX",
    "Raw",
    "check_pax_time",
    "cstring",
    "parse_block",
    "parse_pax",
    "pax_int",
    "refuse",
    "text",
]

_USTAR_MAGIC, _GNU_MAGIC, _GNU_VERSION, _STAR_TRAILER = (
    b"ustar\x00",
    b"ustar ",
    b" \x00",
    b"tar\x00",
)
_HIGH_BYTES = bytes(range(128, 256))
_OCTAL_DIGITS = b"01234567"
_DECIMAL = re.compile(rb"[0-9]{1,19}")
_PAX_TIME = re.compile(rb"-?[0-9]{1,19}(?:\.[0-9]*)?")
INT64_MAX = 2**63 - 1
#: Go parses these for every USTAR, PAX or GNU header and fails it on an
#: error, including mtime, which we do not use.
_NUMERIC_FIELDS = (
    (124, 136, "size"),
    (100, 108, "mode"),
    (108, 116, "uid"),
    (116, 124, "gid"),
    (136, 148, "mtime"),
    (329, 337, "devmajor"),
    (337, 345, "devminor"),
)
_NO_NUL_VALUE = frozenset({b"path", b"linkpath", b"uname", b"gname"})


def cstring(field: bytes) -> bytes:
    """Go's ``parseString``: up to the first NUL, or the whole field."""
    nul = field.find(0)
    return field if nul < 0 else field[:nul]


def _octal(field: bytes) -> int | None:
    # Go's parseOctal: trim NULs and spaces at both ends, cut at a NUL, then
    # strconv.ParseUint(s, 8, 64). int(s, 8) alone would also take "0o",
    # "_", signs and whitespace, hence the digit check.
    digits = cstring(field.strip(b" \x00"))
    if not digits:
        return 0
    if digits.translate(None, _OCTAL_DIGITS):
        return None
    return int(digits, 8)


def _numeric(field: bytes) -> int | None:
    # Go's parseNumeric: base-256 two's complement when the top bit is set.
    if field[0] & 0x80:
        invert = 0xFF if field[0] & 0x40 else 0
        value = int.from_bytes(bytes(c ^ invert for c in field), "big")
        value &= (1 << (8 * len(field) - 1)) - 1  # drop the marker bit
        if value > INT64_MAX:
            return None
        return ~value if invert else value
    return _octal(field)


def _python_number(field: bytes) -> int | None:
    # CPython tarfile's nti(), restated so that no server code imports
    # tarfile: base-256 only behind 0x80 or 0xFF; otherwise cut at the first
    # NUL (a NUL-led field is 0), strip whitespace, read octal. None where
    # nti raises, which makes tarfile end the archive silently mid-stream.
    if field[0] in (0x80, 0xFF):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0xFF else value
    digits = cstring(field).strip(b" \t\n\r\x0b\x0c")
    if not digits:
        return 0
    if digits.translate(None, _OCTAL_DIGITS):
        return None  # int(s, 8) takes signs, "0o" and "_"; Go refuses those first
    return int(digits, 8)


def _ambiguous(
    offset: int, what: str, field: bytes, go: int, python: int | None, note: str = ""
) -> InvalidInput:
    seen = "an invalid header (the end of the archive)" if python is None else f"{python}{note}"
    return refuse(
        offset,
        f"ambiguous {what} field {field!r}: Go's archive/tar reads {go}, "
        f"CPython's tarfile reads {seen}",
    )


def _checksums(block: bytes) -> tuple[int, int]:
    # The unsigned and the signed byte sums, the checksum field read as spaces.
    blanked = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blanked)
    high = len(blanked) - len(blanked.translate(None, _HIGH_BYTES))
    return unsigned, unsigned - 256 * high


def refuse(offset: int, reason: str) -> InvalidInput:
    """The refusal of the header at byte ``offset`` of the tar."""
    return InvalidInput(f"layer tar header at byte {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class Raw:
    """The fields of one 512-byte header, before meta headers are merged."""

    typeflag: int
    name: bytes
    #: Whether the 100-byte name field alone ends in "/": tarfile's test for
    #: a NUL-typed directory (Go tests the name after prefix and overrides).
    name_slash: bool
    linkname: bytes
    size: int
    mode: int
    uid: int
    gid: int
    devmajor: int
    devminor: int


def parse_block(block: bytes, offset: int) -> Raw:
    """Go's ``readHeader`` for one non-zero block at byte ``offset``.

    Raises:
        InvalidInput: on a bad checksum, a STAR, V7 or pre-Go-1.8 GNU header,
            or a numeric field Go cannot parse.
    """
    chksum = _octal(block[148:156])
    if chksum is None or chksum not in _checksums(block):
        raise refuse(offset, "bad checksum")
    python = _python_number(block[148:156])
    if python != chksum:
        # E.g. a NUL-led checksum: Go trims the NUL, tarfile reads 0, fails
        # the checksum and silently takes the header for the end of the archive.
        note = "" if python in _checksums(block) else " (a bad checksum: the end of the archive)"
        raise _ambiguous(offset, "checksum", block[148:156], chksum, python, note)
    magic = block[257:263]
    if magic == _USTAR_MAGIC and block[508:512] == _STAR_TRAILER:
        raise refuse(offset, "STAR headers are not supported")
    gnu = magic == _GNU_MAGIC and block[263:265] == _GNU_VERSION
    if magic != _USTAR_MAGIC and not gnu:
        # Go reads V7 headers without uid and gid; no layer writer makes them.
        raise refuse(offset, "V7 (pre-POSIX) headers are not supported")
    numbers: list[int] = []
    for start, stop, what in _NUMERIC_FIELDS:
        field = block[start:stop]
        value = _numeric(field)
        if value is None:
            raise refuse(offset, f"unparsable {what} field")
        python = _python_number(field)
        if python != value:
            raise _ambiguous(offset, what, field, value, python)
        numbers.append(value)
    size, mode, uid, gid, _mtime, devmajor, devminor = numbers
    name = cstring(block[:100])
    if gnu:
        if cstring(block[345:500]):
            # tarfile joins these bytes to the name as a USTAR prefix
            # whatever the magic; Go reads them as GNU atime and ctime.
            raise refuse(
                offset,
                "ambiguous GNU header: bytes where USTAR has its prefix (CPython's tarfile "
                "reads a name prefix, Go's archive/tar an atime and ctime)",
            )
        for field in (block[345:357], block[357:369]):  # atime, ctime
            if field[0] and _numeric(field) is None:
                # Go then reads these bytes as a USTAR prefix (a workaround
                # for archives its pre-1.8 writer produced).
                raise refuse(offset, "GNU header with an unparsable atime or ctime")
    else:
        prefix = cstring(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    return Raw(
        typeflag=block[156],
        name=name,
        name_slash=block[:100].split(b"\x00", 1)[0].endswith(b"/"),
        linkname=cstring(block[157:257]),
        size=size,
        mode=mode,
        uid=uid,
        gid=gid,
        devmajor=devmajor,
        devminor=devminor,
    )


def parse_pax(body: bytes, *, max_records: int | None = None) -> tuple[dict[bytes, bytes], int]:
    """Parse the records of a PAX extended header as Go's ``parsePAX`` does.

    Linear time: each record is sliced once. A later record with the same
    key replaces the earlier one.

    Returns:
        The records by key, and how many records there were.

    Args:
        body: the header's data.
        max_records: refuse more records than this (``None``: no cap).

    Raises:
        InvalidInput: on a malformed record (Go's ``ErrHeader``), a length
            with a sign or more than 10 digits (Go may accept those; we do
            not), or any ``GNU.sparse.`` record.
        TooLarge: on more than ``max_records`` records.
    """
    records: dict[bytes, bytes] = {}
    pos, end = 0, len(body)
    count = 0
    while pos < end:
        count += 1
        if max_records is not None and count > max_records:
            raise TooLarge(f"more than {max_records} PAX records")
        space = body.find(b" ", pos, min(end, pos + 11))
        digits = body[pos:space] if space >= 0 else b""
        if not digits.isdigit():
            raise InvalidInput(f"PAX record at offset {pos}: bad length field")
        length = int(digits)
        if length < 5 or length > end - pos or length <= len(digits) + 1:
            raise InvalidInput(f"PAX record at offset {pos}: bad length {length}")
        stop = pos + length
        if body[stop - 1] != 0x0A:
            raise InvalidInput(f"PAX record at offset {pos}: no newline at its end")
        key, eq, value = body[space + 1 : stop - 1].partition(b"=")
        if not key or not eq:
            raise InvalidInput(f"PAX record at offset {pos}: no key")
        if b"\x00" in (value if key in _NO_NUL_VALUE else key):
            raise InvalidInput(f"PAX record at offset {pos}: NUL in {key[:50]!r}")
        if key.startswith(b"GNU.sparse."):
            raise InvalidInput("sparse files (GNU.sparse PAX records) are not supported")
        records[key] = value
        pos = stop
    return records, count


def pax_int(key: bytes, value: bytes, offset: int) -> int:
    """Go's ``strconv.ParseInt(v, 10, 64)`` of a PAX value; signs are refused.

    Raises:
        InvalidInput: unless ``value`` is 1 to 19 digits within int64.
    """
    if not _DECIMAL.fullmatch(value) or int(value) > INT64_MAX:
        raise refuse(offset, f"PAX record {key.decode()}: bad number {value[:30]!r}")
    return int(value)


def check_pax_time(key: bytes, value: bytes, offset: int) -> None:
    """Go's ``parsePAXTime`` fails the header on a bad time; so do we.

    Raises:
        InvalidInput: unless ``value`` is ``[-]seconds[.fraction]``.
    """
    match = _PAX_TIME.fullmatch(value)
    if match is None or abs(int(value.split(b".")[0])) > INT64_MAX:
        raise refuse(offset, f"PAX record {key.decode()}: bad time {value[:30]!r}")


def text(value: bytes, what: str, offset: int) -> str:
    """``value`` as strict UTF-8: Go keeps raw bytes, the manifest cannot.

    Raises:
        InvalidInput: if ``value`` is not UTF-8.
    """
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(offset, f"{what} is not UTF-8: {value[:200]!r}") from None
