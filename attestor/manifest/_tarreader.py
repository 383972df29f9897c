# SPDX-License-Identifier: Apache-2.0
"""Read a layer tar's headers the way Go's ``archive/tar`` does, or refuse.

Why this is hand-written and not :mod:`tarfile`: containerd unpacks layers
with Go's ``archive/tar`` (Go 1.19 in Debian bookworm's containerd 1.6 and
umoci), and the manifest we sign must describe exactly what that reader sees.
CPython's ``tarfile`` reads some archives differently: a checksum field that
starts with NUL ends the archive for ``tarfile`` while Go trims the NUL and
reads on, so entries could be unpacked that the manifest never listed; global
PAX headers apply to later members in ``tarfile`` but not in Go; and before
CPython 3.11.10 ``tarfile`` parses PAX headers in quadratic time
(CVE-2024-6232). This module implements the part of Go's reader that real
layers use, with Go's rules, and refuses every other input with
:class:`~attestor.errors.InvalidInput`. Refusing a layer is always safe;
reading it differently from containerd is not.

Accepted: USTAR, PAX (``x``) and GNU headers with checksums Go accepts
(octal, NUL/space padded, signed or unsigned byte sum), octal or base-256
numbers, GNU long names and links (``L``/``K``), the entry types containerd
unpacks (``0``, NUL, ``1``-``6``), then an end-of-archive marker, a clean end
of stream, or zero padding. Refused: V7 and STAR headers, GNU headers that
Go reads with its pre-Go-1.8 fallback, global (``g``) and sparse headers,
other entry types, negative or out-of-range numbers, non-UTF-8 names, meta
headers with no entry after them, truncation anywhere but at a header
boundary, and non-zero bytes after the end-of-archive marker.

Also refused: headers Go reads one way and CPython's ``tarfile`` (the
reader of Python-based scanners) another, so that no consumer of an
attested layer sees other entries than containerd. These are numeric fields
and checksums ``tarfile`` parses to another value or not at all (it then
ends the archive there: a NUL-led checksum hid a setuid file from it), two
meta headers of one kind before an entry (Go uses the last, ``tarfile`` the
first), a PAX ``path`` or ``linkpath`` beside a GNU long name or link, empty
GNU long names and empty PAX ``path``/``linkpath``/``size``/``uid``/``gid``/
``mtime`` values (Go keeps the header's field, ``tarfile`` the empty value),
bytes in a GNU header's USTAR prefix area, and a NUL-typed entry whose
directory-ness tarfile judges from another name than Go. These rules are
restated from ``tarfile``'s source; ``tarfile`` is never run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._tarfields import (
    INT64_MAX,
    Raw,
    check_pax_time,
    cstring,
    parse_block,
    parse_pax,
    pax_int,
    refuse,
    text,
)

__all__ = ["TarHeader", "TarReader"]

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_CHUNK = 1 << 20
_ZERO_CHUNK = bytes(_CHUNK)
#: Go refuses a PAX or GNU long-name body above this (``maxSpecialFileSize``).
GO_MAX_SPECIAL = 1 << 20
#: Entry types Go returns and containerd's unpack creates; NUL is the old
#: regular-file flag, which Go turns into ``0`` or ``5``.
_ENTRY_TYPES = frozenset(b"\x000123456")
#: Go gives these no data section, whatever the size field says.
_HEADER_ONLY = frozenset(b"123456")
#: uid and gid must fit Linux's 32 bits, and -1 (2**32 - 1) means "unchanged"
#: to lchown, so containerd would leave the file owned by root.
_MAX_ID = 2**32 - 2
#: Linux's mknod takes a 32-bit device number: 12-bit major, 20-bit minor.
_MAX_MAJOR, _MAX_MINOR = 2**12 - 1, 2**20 - 1
_XATTR = b"SCHILY.xattr."
_META_NAMES = {
    ord("x"): "PAX ('x')",
    ord("L"): "GNU long name ('L')",
    ord("K"): "GNU long link ('K')",
}
#: PAX records tarfile applies even when empty (as "" or as the number 0).
_NO_EMPTY_PAX = frozenset({b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime"})
_NO_XATTRS: Mapping[bytes, bytes] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TarHeader:
    """One entry as Go's ``tar.Reader.Next`` returns it, meta headers merged.

    Attributes:
        name: the name after PAX ``path`` and GNU long-name overrides, as
            written (containerd cleans it).
        linkname: the link target after PAX ``linkpath`` and GNU long-link.
        typeflag: one of ``"0"``-``"6"`` (NUL already turned into ``0``/``5``).
        size: bytes of data that follow (0 for the header-only types).
        mode: the mode field; containerd applies its low 12 bits.
        uid: owner after a PAX ``uid`` override.
        gid: group after a PAX ``gid`` override.
        devmajor: device major number (character and block devices).
        devminor: device minor number.
        xattrs: every ``SCHILY.xattr.`` record of the PAX header, name to raw
            value, empty values included: containerd sets them all.
    """

    name: str
    linkname: str
    typeflag: str
    size: int
    mode: int
    uid: int
    gid: int
    devmajor: int
    devminor: int
    xattrs: Mapping[bytes, bytes]


class TarReader:
    """Iterate a tar stream's entries, Go's way (see the module docstring).

    Call :meth:`next` for each entry and :meth:`read_data` for its data;
    after :meth:`next` returns ``None``, :meth:`finish` checks and consumes
    the rest of the stream.
    """

    def __init__(
        self, stream: BinaryIO, *, max_meta_bytes: int, max_pax_records: int | None = None
    ) -> None:
        """Read from ``stream``.

        Args:
            stream: the uncompressed tar.
            max_meta_bytes: the largest PAX or GNU long-name body read into
                memory (never more than Go's own 1 MiB cap).
            max_pax_records: PAX records in the whole archive; each costs
                Python time, so a layer of tiny records must stop early.
        """
        self._stream = stream
        self._max_meta = min(max_meta_bytes, GO_MAX_SPECIAL)
        self._pax_budget = max_pax_records
        self._remaining = 0
        self._pad = 0
        self._ended = False
        #: Bytes read from the stream so far.
        self.offset = 0

    def _read(self, size: int) -> bytes:
        # stream.read may return less than asked before the end (pipes,
        # decompressors); only an empty read is the end.
        data = self._stream.read(size)
        if 0 < len(data) < size:
            parts = [data]
            got = len(data)
            while got < size and (more := self._stream.read(size - got)):
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self.offset += len(data)
        return data

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._read(size)
        if len(data) != size:
            raise InvalidInput(f"layer tar is truncated in {what} (at byte {self.offset})")
        return data

    def read_data(self, size: int = _CHUNK) -> bytes:
        """Up to ``size`` bytes of the current entry's data; ``b""`` at its end.

        Raises:
            InvalidInput: if the stream ends inside the data.
        """
        size = min(size, self._remaining)
        if size <= 0:
            return b""
        data = self._read_exact(size, "file data")
        self._remaining -= size
        return data

    def _skip(self) -> None:
        while self._remaining:
            self.read_data()
        if self._pad:
            # Go takes a stream that ends inside this padding for a clean end
            # of archive; we refuse it as truncated.
            self._read_exact(self._pad, "block padding")
            self._pad = 0

    def _start_data(self, size: int) -> None:
        self._remaining = size
        self._pad = -size % BLOCK

    def _read_block(self) -> bytes | None:
        """The next header block, or ``None`` at the end of the archive."""
        block = self._read(BLOCK)
        if not block:
            return None  # Go accepts an archive without an end marker
        if len(block) < BLOCK:
            raise InvalidInput(f"layer tar is truncated in a header (at byte {self.offset})")
        if block != _ZERO_BLOCK:
            return block
        second = self._read(BLOCK)
        if 0 < len(second) < BLOCK:
            raise InvalidInput(f"layer tar is truncated after a zero block (at byte {self.offset})")
        if second and second != _ZERO_BLOCK:
            raise refuse(self.offset - len(second), "a zero block followed by a non-zero one")
        return None

    def _read_meta(self, raw: Raw, offset: int) -> bytes:
        if raw.size < 0:
            raise refuse(offset, "negative size")
        if raw.size > self._max_meta:
            raise TooLarge(
                f"layer tar header at byte {offset}: {chr(raw.typeflag)!r} header of "
                f"{raw.size} bytes exceeds {self._max_meta}"
            )
        self._start_data(raw.size)
        body = self._read_exact(raw.size, "a PAX or GNU long-name header")
        self._remaining = 0
        return body

    def next(self) -> TarHeader | None:
        """Advance to the next entry, skipping the rest of the current one.

        Returns:
            The entry, or ``None`` at the end of the archive.

        Raises:
            InvalidInput: on a header Go would read differently or refuse.
            TooLarge: on a PAX or GNU long-name body over the cap.
        """
        if self._ended:
            return None
        pax: dict[bytes, bytes] = {}
        long_name = long_link = b""
        seen: set[int] = set()
        while True:
            self._skip()
            offset = self.offset
            block = self._read_block()
            if block is None:
                if seen:
                    raise refuse(offset, "PAX or GNU long-name header with no entry after it")
                self._ended = True
                return None
            raw = parse_block(block, offset)
            flag = raw.typeflag
            if flag in seen:
                # Go uses the last of them, tarfile the first; writers put
                # at most one of each kind before an entry. This also bounds
                # the Python time per entry: at most three meta headers.
                raise refuse(offset, f"ambiguous: two {_META_NAMES[flag]} headers for one entry")
            if flag == ord("x"):
                body = self._read_meta(raw, offset)
                try:
                    pax, count = parse_pax(body, max_records=self._pax_budget)
                except TooLarge as e:
                    raise TooLarge(f"layer tar header at byte {offset}: {e}") from None
                except InvalidInput as e:
                    raise refuse(offset, str(e)) from None
                if self._pax_budget is not None:
                    self._pax_budget -= count
            elif flag in (ord("L"), ord("K")):
                # Go cuts the body at its first NUL (so does tarfile) and
                # ignores an empty name, which tarfile applies.
                value = cstring(self._read_meta(raw, offset))
                if not value:
                    raise refuse(
                        offset,
                        f"ambiguous: empty {_META_NAMES[flag]} (Go's archive/tar keeps the "
                        "header's own field, CPython's tarfile uses the empty one)",
                    )
                if flag == ord("L"):
                    long_name = value
                else:
                    long_link = value
            elif flag == ord("g"):
                # containerd ignores global headers, tarfile applies them to
                # every later member: refuse rather than pick one reading.
                raise refuse(offset, "global PAX headers ('g') are not supported")
            elif flag not in _ENTRY_TYPES:
                raise refuse(offset, f"unsupported entry type {chr(flag)!r}")
            else:
                return self._entry(raw, pax, long_name, long_link, offset)
            seen.add(flag)

    def _entry(
        self, raw: Raw, pax: dict[bytes, bytes], long_name: bytes, long_link: bytes, offset: int
    ) -> TarHeader:
        # Go's mergePAX: an empty value keeps the header's own field.
        name, link, size, uid, gid = raw.name, raw.linkname, raw.size, raw.uid, raw.gid
        for gnu, key, what in ((long_name, b"path", "name"), (long_link, b"linkpath", "link")):
            if gnu and key in pax:
                # Go lets the GNU value win, tarfile the meta header read first.
                raise refuse(
                    offset, f"ambiguous: a PAX {key.decode()} and a GNU long {what} for one entry"
                )
        for key, value in pax.items():
            if not value:
                if key in _NO_EMPTY_PAX:
                    raise refuse(
                        offset,
                        f"ambiguous: empty PAX {key.decode()} record (Go's archive/tar keeps "
                        "the header's field, CPython's tarfile uses the empty value)",
                    )
                continue
            if key == b"path":
                name = value
            elif key == b"linkpath":
                link = value
            elif key == b"size":
                size = pax_int(key, value, offset)
            elif key == b"uid":
                uid = pax_int(key, value, offset)
            elif key == b"gid":
                gid = pax_int(key, value, offset)
            elif key in (b"atime", b"mtime", b"ctime"):
                check_pax_time(key, value, offset)
        name = long_name or name
        link = long_link or link
        flag = raw.typeflag
        if flag == 0:
            if raw.name_slash != name.endswith(b"/"):
                raise refuse(
                    offset,
                    "ambiguous: a NUL-typed entry is a directory for Go's archive/tar and "
                    "a file for CPython's tarfile, or the reverse",
                )
            flag = ord("5") if name.endswith(b"/") else ord("0")
        for what, number, top in (
            # Go checks the header's own size before PAX records replace it.
            ("size field", raw.size, INT64_MAX),
            ("size", size, INT64_MAX),
            ("mode", raw.mode, INT64_MAX),
            ("uid", uid, _MAX_ID),
            ("gid", gid, _MAX_ID),
            ("device major", raw.devmajor, _MAX_MAJOR),
            ("device minor", raw.devminor, _MAX_MINOR),
        ):
            if not 0 <= number <= top:
                raise refuse(offset, f"{what} {number} out of range")
        header = TarHeader(
            name=text(name, "name", offset),
            linkname=text(link, "link name", offset),
            typeflag=chr(flag),
            size=0 if flag in _HEADER_ONLY else size,
            mode=raw.mode,
            uid=uid,
            gid=gid,
            devmajor=raw.devmajor,
            devminor=raw.devminor,
            xattrs=(
                {k[len(_XATTR) :]: v for k, v in pax.items() if k.startswith(_XATTR)}
                if pax
                else _NO_XATTRS
            ),
        )
        self._start_data(header.size)
        return header

    def finish(self) -> None:
        """After the end of the archive, require zeros to the end of the stream.

        The stream is read to its end so that a hashing wrapper sees it all.

        Raises:
            InvalidInput: if called before the end, or on a non-zero byte.
        """
        if not self._ended:
            raise InvalidInput("layer tar read stopped before its end-of-archive marker")
        while chunk := self._read(_CHUNK):
            # memcmp against zeros: ~100x faster than strip() on bomb-sized tails.
            zeros = _ZERO_CHUNK if len(chunk) == _CHUNK else bytes(len(chunk))
            if chunk != zeros:
                raise InvalidInput(
                    f"non-zero bytes after the end-of-archive marker (before byte {self.offset})"
                )
