# SPDX-License-Identifier: Apache-2.0
"""A compact, read-only form of a verified manifest for the agent's sweep.

A :class:`FileManifest` costs about 370 bytes per entry (a slotted object,
a hex digest string, int objects, an index dict); the agent holds one per
lower layer between sweeps, against a target of 60 MB resident memory. This
form keeps a sorted table of the paths and one blob of packed records (43
bytes for most regular files), and decodes a :class:`ManifestEntry` only when
asked: about 70 bytes per entry for a 50,000-file layer.

:meth:`AttestedManifest.from_canonical_bytes` parses the document one entry at
a time (no whole-document JSON tree) and applies every check of
:meth:`FileManifest.from_canonical_bytes`: strict JSON, each entry's members,
byte-identical canonical form, order, parent directories, hardlink groups and
the caps in :class:`ManifestLimits`.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import struct
from array import array
from collections.abc import Callable, Iterator

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._merkle import RootBuilder
from attestor.manifest._model import MEDIA_TYPE, EntryType, FileManifest, ManifestEntry, check_place

__all__ = [
    "AttestedManifest",
    "PathTable",
    "compact_unhashed",
    "file_digest_of",
    "pack_entry",
    "pack_file",
    "unpack_entry",
]

_TYPES = tuple(EntryType)
_TYPE_INDEX = {kind: i for i, kind in enumerate(_TYPES)}
_DIR_INDEXES = frozenset({_TYPE_INDEX[EntryType.DIR], _TYPE_INDEX[EntryType.OPAQUE_DIR]})
# type, presence bits, mode, uid, gid, devmajor, devminor, size, sha256, link length;
# then the link (UTF-8) and the capability (the rest).
_HEAD = struct.Struct("<BBHIIIIQ32sH")
_OPTIONAL = ("mode", "uid", "gid", "devmajor", "devminor", "size", "sha256", "link", "capability")
_BIT = {name: 1 << i for i, name in enumerate(_OPTIONAL)}
_PREFIX = b'{"entries":['
_SUFFIX = b'],"mediaType":' + json.dumps(MEDIA_TYPE).encode("ascii") + b"}"


def pack_entry(entry: ManifestEntry) -> bytes:
    """The packed record of ``entry`` (equal entries give equal records)."""
    bits = 0
    for name in _OPTIONAL:
        if getattr(entry, name) is not None:
            bits |= _BIT[name]
    if entry.type is EntryType.FILE and bits & 0xFF == _FILE_BITS:
        return pack_file(
            entry.mode or 0,
            entry.uid or 0,
            entry.gid or 0,
            entry.size or 0,
            bytes.fromhex(entry.sha256 or ""),
            entry.capability or b"",
        )
    link = entry.link.encode("utf-8") if entry.link is not None else b""
    head = _HEAD.pack(
        _TYPE_INDEX[entry.type],
        bits & 0xFF,
        entry.mode or 0,
        entry.uid or 0,
        entry.gid or 0,
        entry.devmajor or 0,
        entry.devminor or 0,
        entry.size or 0,
        bytes.fromhex(entry.sha256) if entry.sha256 is not None else b"",
        len(link),
    )
    # The ninth presence bit (capability) is implied by a non-empty tail.
    return head + link + (entry.capability or b"")


_FILE_BITS = _BIT["mode"] | _BIT["uid"] | _BIT["gid"] | _BIT["size"] | _BIT["sha256"]
_FILE_INDEX = _TYPE_INDEX[EntryType.FILE]
#: Where a regular file's raw sha256 and capability sit in its record (no link).
_DIGEST_AT, _CAP_AT = _HEAD.size - 34, _HEAD.size
# Most regular files have a uid and gid under 2**16 and a size under 2**32:
# their record is the short form, 43 bytes instead of 62 (about 1 MB less
# for a 50,000-file layer). Its type byte is a value no entry type has, so
# the two forms never give the same record; which form a file gets depends
# only on its values, so equal entries still give equal records.
_SHORT = struct.Struct("<BHHHI32s")  # kind, mode, uid, gid, size, sha256; then the capability
_SHORT_FILE = 0x80
_SHORT_DIGEST_AT = _SHORT.size - 32


def pack_file(mode: int, uid: int, gid: int, size: int, digest: bytes, capability: bytes) -> bytes:
    """``pack_entry`` of a regular file entry, without building the entry.

    ``digest`` is the raw sha256 and ``capability`` the xattr value (empty
    when absent). It is on the sweep's per-file hot path.
    """
    if uid < 0x10000 and gid < 0x10000 and size < 0x100000000:
        return _SHORT.pack(_SHORT_FILE, mode, uid, gid, size, digest) + capability
    head = _HEAD.pack(_FILE_INDEX, _FILE_BITS, mode, uid, gid, 0, 0, size, digest, 0)
    return head + capability


def file_digest_of(record: bytes) -> bytes:
    """Raw sha256 + capability of a record made by :func:`pack_file`."""
    if record[0] == _SHORT_FILE:
        return record[_SHORT_DIGEST_AT:]
    return record[_DIGEST_AT : _DIGEST_AT + 32] + record[_CAP_AT:]


def unpack_entry(path: str, record: bytes) -> ManifestEntry:
    """Decode a record made by :func:`pack_entry` for ``path``."""
    if record[0] == _SHORT_FILE:
        _, mode, uid, gid, size, raw = _SHORT.unpack_from(record)
        return ManifestEntry._trusted(
            path,
            EntryType.FILE,
            mode=mode,
            uid=uid,
            gid=gid,
            size=size,
            sha256=raw.hex(),
            capability=record[_SHORT.size :] or None,
        )
    kind, bits, mode, uid, gid, major, minor, size, digest, link_len = _HEAD.unpack_from(record)
    link = record[_HEAD.size : _HEAD.size + link_len].decode("utf-8") if link_len else None
    capability = record[_HEAD.size + link_len :] or None

    def has(name: str) -> bool:
        return bool(bits & _BIT[name])

    return ManifestEntry._trusted(
        path,
        _TYPES[kind],
        mode=mode if has("mode") else None,
        uid=uid if has("uid") else None,
        gid=gid if has("gid") else None,
        size=size if has("size") else None,
        sha256=digest.hex() if has("sha256") else None,
        link=link,
        capability=capability,
        devmajor=major if has("devmajor") else None,
        devminor=minor if has("devminor") else None,
    )


#: Paths per block of a PathTable (the first of each is sampled).
_BLOCK = 16


class PathTable:
    """Sorted UTF-8 paths in blocks of 16, each path between NULs.

    A list of path objects costs about 56 bytes per path beyond the path
    itself; this costs one NUL plus a sampled path per block, which keeps the
    agent's memory small with a 50,000-file layer. A lookup bisects the samples, then finds
    the path in its block with one C-level search. UTF-8 byte order is code
    point order, the spec's order.
    """

    __slots__ = ("blocks", "count", "current", "samples")

    def __init__(self) -> None:
        self.blocks: list[bytes | bytearray] = []
        self.samples: list[bytes] = []
        self.current = bytearray()  # the last block, while it fills
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, raw: bytes) -> None:
        if self.count % _BLOCK == 0:
            if self.blocks:
                self.blocks[-1] = bytes(self.current)  # exact size once full
            self.current = bytearray(b"\0")
            self.blocks.append(self.current)
            self.samples.append(raw)
        self.current += raw
        self.current.append(0)
        self.count += 1

    def finish(self) -> PathTable:
        if self.blocks:
            self.blocks[-1] = bytes(self.current)
        self.current = bytearray()
        return self

    def at(self, index: int) -> bytes:
        block, k = divmod(index, _BLOCK)
        return bytes(self.blocks[block].split(b"\0", k + 2)[k + 1])

    def find(self, raw: bytes) -> int | None:
        """Index of ``raw``, if present."""
        block = bisect.bisect_right(self.samples, raw) - 1
        if block < 0 or 0 in raw:
            return None
        text = self.blocks[block]
        at = text.find(b"\0" + raw + b"\0")
        # One NUL before each path of the block up to the one found.
        return None if at < 0 else block * _BLOCK + text.count(0, 0, at)


class AttestedManifest:
    """A verified manifest as a sorted path table plus one blob of packed records.

    Build it with :meth:`from_canonical_bytes` or :meth:`from_manifest`;
    :meth:`to_manifest` gives the full :class:`FileManifest` when needed.
    """

    __slots__ = ("_blob", "_offsets", "_paths", "sha256", "tree_digest")

    def __init__(
        self,
        paths: PathTable,
        offsets: array[int],
        blob: bytearray,
        sha256: str,
        tree_digest: str,
    ) -> None:
        self._paths = paths
        self._offsets = offsets
        self._blob = blob
        #: ``sha256:<hex>`` of the canonical bytes.
        self.sha256 = sha256
        #: ``sha256:<hex>`` RFC 6962 tree hash over the entries.
        self.tree_digest = tree_digest

    @classmethod
    def from_manifest(cls, manifest: FileManifest) -> AttestedManifest:
        """The compact form of ``manifest``."""
        builder = _Builder()
        for entry in manifest.entries:
            builder.add(entry)
        return builder.build(manifest.sha256, manifest.tree_digest)

    @classmethod
    def from_canonical_bytes(
        cls, data: bytes, *, limits: ManifestLimits | None = None
    ) -> AttestedManifest:
        """Strictly parse canonical bytes, as :meth:`FileManifest.from_canonical_bytes`.

        Raises:
            InvalidInput: if ``data`` is not JSON, not a valid manifest, or not
                byte-identical to the canonical serialization of what it holds.
            TooLarge: if ``data`` exceeds ``limits.max_manifest_bytes`` or holds
                more than ``limits.max_entries`` entries.
        """
        limits = limits or ManifestLimits()
        if len(data) > limits.max_manifest_bytes:
            raise TooLarge(f"manifest is {len(data)} bytes, limit {limits.max_manifest_bytes}")
        # BytesIO shares the bytes object's buffer until written to: no copy.
        return cls.from_canonical_stream(io.BytesIO(data).read, limits=limits)

    @classmethod
    def from_canonical_stream(
        cls, read: Callable[[int], bytes], *, limits: ManifestLimits | None = None
    ) -> AttestedManifest:
        """:meth:`from_canonical_bytes` over what ``read(n)`` returns until ``b""``.

        The same checks, sha256 and tree digest over the same bytes, without
        holding the whole document: loading a 50,000-entry manifest then
        peaks at the compact form plus a few chunks, not also its 8 MB of
        canonical bytes. ``sha256`` is over exactly the bytes read: the caller
        compares it with the signed statement before trusting the result.

        Raises:
            InvalidInput: as :meth:`from_canonical_bytes`.
            TooLarge: as :meth:`from_canonical_bytes` (the stream is read at
                most one chunk past ``limits.max_manifest_bytes``).
        """
        limits = limits or ManifestLimits()
        source = _Source(read, limits.max_manifest_bytes)
        builder = _Builder()
        tree = RootBuilder()
        for entry, canonical in _entries(source, limits):
            if builder.last is not None and entry.path.encode("utf-8") <= builder.last:
                raise InvalidInput(f"entries not sorted or duplicated at {entry.path!r}")
            check_place(entry, builder.is_dir, builder.entry)
            builder.add(entry)
            tree.add(canonical)
        return builder.build("sha256:" + source.hash.hexdigest(), "sha256:" + tree.root().hex())

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.index(path) is not None

    def index(self, path: str) -> int | None:
        """Position of ``path`` in manifest order, if present."""
        return self._paths.find(path.encode("utf-8", "surrogatepass"))

    def finder(self) -> Callable[[bytes], int | None]:
        """The lookup of a UTF-8 path's position, for the sweep's inner loop."""
        return self._paths.find

    def path_at(self, index: int) -> str:
        """The path at ``index`` in manifest order."""
        return self._paths.at(index).decode("utf-8")

    def record_at(self, index: int) -> bytes:
        """The packed record at ``index`` in manifest order."""
        return bytes(self._blob[self._offsets[index] : self._offsets[index + 1]])

    def columns(self) -> tuple[array[int], bytearray]:
        """The record offsets and the record blob (read-only).

        For the sweep's inner loop, which compares every file of a layer.
        """
        return self._offsets, self._blob

    def get(self, path: str) -> ManifestEntry | None:
        """The entry at ``path``, if any (decoded on each call)."""
        i = self.index(path)
        return None if i is None else unpack_entry(path, self.record_at(i))

    def record(self, path: str) -> bytes | None:
        """The packed record at ``path`` (compare with :func:`pack_entry`)."""
        i = self.index(path)
        return None if i is None else self.record_at(i)

    def records(self) -> Iterator[tuple[str, bytes]]:
        """(path, packed record) pairs in manifest order."""
        return ((self.path_at(i), self.record_at(i)) for i in range(len(self._paths)))

    def paths(self) -> Iterator[str]:
        """All paths, in manifest order."""
        return (self.path_at(i) for i in range(len(self._paths)))

    def entries(self) -> Iterator[ManifestEntry]:
        """All entries, decoded, in manifest order."""
        return (unpack_entry(p, r) for p, r in self.records())

    def to_manifest(self) -> FileManifest:
        """The full :class:`FileManifest` (about three times the memory of this form)."""
        return FileManifest(tuple(self.entries()))


def compact_unhashed(manifest: FileManifest) -> AttestedManifest:
    """The compact form without the two digests (left empty), for one comparison."""
    builder = _Builder()
    for entry in manifest.entries:
        builder.add(entry)
    return builder.build("", "")


class _Builder:
    def __init__(self) -> None:
        self.paths = PathTable()
        self.last: bytes | None = None
        # Within 32 bits: records are smaller than their canonical JSON.
        self.offsets = array("I", [0])
        self.blob = bytearray()

    def add(self, entry: ManifestEntry) -> None:
        self.last = entry.path.encode("utf-8")
        self.paths.append(self.last)
        self.blob += pack_entry(entry)
        self.offsets.append(len(self.blob))

    def lookup(self, path: str) -> bytes | None:
        i = self.paths.find(path.encode("utf-8"))
        if i is None:
            return None
        return bytes(self.blob[self.offsets[i] : self.offsets[i + 1]])

    def is_dir(self, path: str) -> bool:
        record = self.lookup(path)
        return record is not None and record[0] in _DIR_INDEXES

    def entry(self, path: str) -> ManifestEntry | None:
        record = self.lookup(path)
        return None if record is None else unpack_entry(path, record)

    def build(self, sha256: str, tree_digest: str) -> AttestedManifest:
        # Kept as the bytearray: a bytes copy would double the blob at the peak.
        return AttestedManifest(self.paths.finish(), self.offsets, self.blob, sha256, tree_digest)


#: First window decoded around an entry; doubled while an entry does not fit.
_WINDOW = 512
#: Bytes asked of the stream at a time.
_CHUNK = 64 * 1024


class _Source:
    """A byte stream seen through a sliding buffer, hashed as it is read.

    Every byte read is hashed once and in order, so the digest is that of the
    bytes the parser read; only a few chunks are held at a time.
    """

    def __init__(self, read: Callable[[int], bytes], max_bytes: int) -> None:
        self._read = read
        self._max = max_bytes
        self.hash = hashlib.sha256()
        self.total = 0
        self.buf = b""
        self.pos = 0
        self.eof = False

    def fill(self, n: int) -> bool:
        """Try to have ``n`` bytes from ``pos`` in the buffer; True if it has."""
        while len(self.buf) - self.pos < n and not self.eof:
            chunk = self._read(max(_CHUNK, n))
            if not chunk:
                self.eof = True
                break
            self.total += len(chunk)
            if self.total > self._max:
                raise TooLarge(f"manifest is over {self._max} bytes")
            self.hash.update(chunk)
            self.buf = self.buf[self.pos :] + chunk
            self.pos = 0
        return len(self.buf) - self.pos >= n

    def startswith(self, prefix: bytes) -> bool:
        self.fill(len(prefix))
        return self.buf.startswith(prefix, self.pos)

    def window(self, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos`` (fewer only at the end of the stream)."""
        self.fill(n)
        return self.buf[self.pos : self.pos + n]

    def rest_is(self, suffix: bytes) -> bool:
        """Whether what is left of the stream is exactly ``suffix``."""
        return not self.fill(len(suffix) + 1) and self.buf[self.pos :] == suffix


def _entries(source: _Source, limits: ManifestLimits) -> Iterator[tuple[ManifestEntry, bytes]]:
    # Walks the one canonical layout, {"entries":[e,e,...],"mediaType":"..."},
    # decoding one entry object at a time from a window of the bytes, so no
    # copy of the whole document is made; each entry must then equal its
    # canonical form byte for byte. surrogateescape keeps a window cut inside
    # a UTF-8 sequence decodable; a stray byte inside an entry fails the path
    # or the byte comparison.
    if not source.startswith(_PREFIX):
        raise InvalidInput("manifest bytes are not in canonical form")
    decoder = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
    source.pos += len(_PREFIX)
    count = 0
    if not source.startswith(b"]"):
        while True:
            count += 1
            if count > limits.max_entries:
                raise TooLarge(f"more than {limits.max_entries} entries")
            obj = _decode_one(decoder, source)
            entry = ManifestEntry.from_json(obj)
            canonical = entry.canonical_bytes()
            if not source.startswith(canonical):
                raise InvalidInput("manifest bytes are not in canonical form")
            yield entry, canonical
            source.pos += len(canonical)
            if not source.startswith(b","):
                break
            source.pos += 1
    if not source.rest_is(_SUFFIX):
        raise InvalidInput("manifest bytes are not in canonical form")


def _decode_one(decoder: json.JSONDecoder, source: _Source) -> object:
    window = _WINDOW
    while True:
        raw = source.window(window)
        try:
            return decoder.raw_decode(raw.decode("utf-8", "surrogateescape"))[0]
        except ValueError as e:
            if len(raw) < window:  # the whole rest of the stream did not parse
                raise InvalidInput(f"manifest is not valid JSON: {e}") from None
        window *= 2


def _no_float(value: str) -> object:
    raise InvalidInput(f"manifest holds a non-integer number: {value[:20]}")
