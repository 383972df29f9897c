# SPDX-License-Identifier: Apache-2.0
"""The layer file manifest model and its canonical serialization.

Specified in ``docs/layer-manifest.md``: the document is RFC 8785 (JCS) JSON,
which for our value space (strings and non-negative integers only) is exactly
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import enum
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from attestor.digests import sha256_digest
from attestor.errors import InvalidInput, TooLarge
from attestor.json_strict import loads_strict
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._merkle import inclusion_proof, merkle_root

__all__ = [
    "LAYER_READING_VERSION",
    "MEDIA_TYPE",
    "EntryType",
    "FileManifest",
    "ManifestEntry",
    "check_path",
    "check_place",
]

#: The ``mediaType`` member of every manifest document (version 1).
MEDIA_TYPE = "application/vnd.attestor.layer-manifest.v1+json"
#: How layer tars are read into manifests. Bumped whenever a change of the tar
#: reading could give another manifest for the same blob (a layer accepted or
#: refused differently): stored scans of another version are never reused,
#: so a blob first read by an older, laxer reader is read again.
LAYER_READING_VERSION = 2

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_MODE = re.compile(r"^[0-7]{4}$")
_MAX_ID = 2**32 - 1


class EntryType(enum.StrEnum):
    """What a path is once the layer is unpacked (spec section "Entry types")."""

    FILE = "file"
    HARDLINK = "hardlink"
    DIR = "dir"
    OPAQUE_DIR = "opaque_dir"
    SYMLINK = "symlink"
    WHITEOUT = "whiteout"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"
    FIFO = "fifo"
    SOCKET = "socket"


_DIR_TYPES = frozenset({EntryType.DIR, EntryType.OPAQUE_DIR})
_COMMON = frozenset({"path", "type"})
_OWNED = _COMMON | {"mode", "uid", "gid"}
# Required and optional members per type; absent members are omitted, never null.
_REQUIRED: dict[EntryType, frozenset[str]] = {
    EntryType.FILE: _OWNED | {"size", "sha256"},
    EntryType.HARDLINK: _OWNED | {"size", "sha256", "link"},
    EntryType.DIR: _OWNED,
    EntryType.OPAQUE_DIR: _OWNED,
    EntryType.SYMLINK: _COMMON | {"uid", "gid", "link"},
    EntryType.WHITEOUT: _COMMON,
    EntryType.CHARDEV: _OWNED | {"devmajor", "devminor"},
    EntryType.BLOCKDEV: _OWNED | {"devmajor", "devminor"},
    EntryType.FIFO: _OWNED,
    EntryType.SOCKET: _OWNED,
}
_NO_CAPABILITY = frozenset({EntryType.SYMLINK, EntryType.WHITEOUT})
_ALL_FIELDS = (
    "mode",
    "uid",
    "gid",
    "size",
    "sha256",
    "link",
    "capability",
    "devmajor",
    "devminor",
)


def check_path(path: str, *, limits: ManifestLimits | None = None) -> str:
    """Check that ``path`` is a normalized manifest path and return it.

    Normalized means: relative, ``/``-separated, no empty, ``.`` or ``..``
    component, no NUL, valid UTF-8, at most ``limits.max_path_bytes`` bytes.

    Raises:
        InvalidInput: if it is not.
    """
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"path is not valid UTF-8: {path!r}") from None
    max_bytes = (limits or ManifestLimits()).max_path_bytes
    if len(raw) > max_bytes:
        raise TooLarge(f"path is {len(raw)} bytes, limit {max_bytes}: {path[:80]!r}")
    if not path or "\x00" in path or path.startswith("/") or path.endswith("/"):
        raise InvalidInput(f"path is not normalized: {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(f"path is not normalized: {path!r}")
    return path


def _check_link(link: str, limits: ManifestLimits | None) -> None:
    try:
        raw = link.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"link target is not valid UTF-8: {link!r}") from None
    max_bytes = (limits or ManifestLimits()).max_path_bytes
    if not raw or b"\x00" in raw:
        raise InvalidInput(f"link target is empty or holds NUL: {link!r}")
    if len(raw) > max_bytes:
        raise TooLarge(f"link target is {len(raw)} bytes, limit {max_bytes}")


def _is_uint(value: object, maximum: int) -> bool:
    # bool is an int subclass; JSON true must not pass as 1.
    return type(value) is int and 0 <= value <= maximum


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One path of an unpacked layer.

    Which attributes are present depends on ``type`` (spec table "Members");
    the constructor rejects any other combination.

    Raises:
        InvalidInput: on a malformed path or a member set that does not fit
            ``type``.
    """

    path: str
    type: EntryType
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    sha256: str | None = None
    link: str | None = None
    capability: bytes | None = None
    devmajor: int | None = None
    devminor: int | None = None

    def __post_init__(self) -> None:
        check_path(self.path)
        try:
            kind = EntryType(self.type)
        except ValueError:
            raise InvalidInput(f"unknown entry type {self.type!r} at {self.path!r}") from None
        object.__setattr__(self, "type", kind)
        present = {name for name in _ALL_FIELDS if getattr(self, name) is not None} | _COMMON
        required = _REQUIRED[kind]
        optional = set() if kind in _NO_CAPABILITY else {"capability"}
        if not required <= present or present - required - optional:
            raise InvalidInput(
                f"{kind.value} entry {self.path!r} has members {sorted(present)}, "
                f"expected {sorted(required)} (+ {sorted(optional)})"
            )
        if self.mode is not None and not _is_uint(self.mode, 0o7777):
            raise InvalidInput(f"mode out of range at {self.path!r}: {self.mode!r}")
        for name in ("uid", "gid", "devmajor", "devminor"):
            if getattr(self, name) is not None and not _is_uint(getattr(self, name), _MAX_ID):
                raise InvalidInput(f"{name} out of range at {self.path!r}")
        if self.size is not None and not _is_uint(self.size, 2**63 - 1):
            raise InvalidInput(f"size out of range at {self.path!r}: {self.size!r}")
        if self.sha256 is not None and not (
            isinstance(self.sha256, str) and _SHA256_HEX.match(self.sha256)
        ):
            raise InvalidInput(f"sha256 is not 64 lowercase hex at {self.path!r}")
        if self.link is not None:
            _check_link(self.link, None)
            if kind is EntryType.HARDLINK:
                check_path(self.link)
        if self.capability is not None and (
            not isinstance(self.capability, bytes) or not self.capability
        ):
            raise InvalidInput(f"capability must be non-empty bytes at {self.path!r}")
        if kind is EntryType.CHARDEV and self.devmajor == 0 and self.devminor == 0:
            # 0/0 is how overlayfs spells a whiteout; a real one would be ambiguous.
            raise InvalidInput(f"character device 0/0 at {self.path!r} is a whiteout")

    @classmethod
    def _trusted(
        cls,
        path: str,
        kind: EntryType,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        sha256: str | None = None,
        link: str | None = None,
        capability: bytes | None = None,
        devmajor: int | None = None,
        devminor: int | None = None,
    ) -> ManifestEntry:
        # Skips __post_init__: the snapshot scanner builds 50,000 entries per
        # sweep from values the kernel already constrains (its <1 s budget);
        # it checks paths and link targets itself.
        entry = object.__new__(cls)
        put = object.__setattr__
        put(entry, "path", path)
        put(entry, "type", kind)
        put(entry, "mode", mode)
        put(entry, "uid", uid)
        put(entry, "gid", gid)
        put(entry, "size", size)
        put(entry, "sha256", sha256)
        put(entry, "link", link)
        put(entry, "capability", capability)
        put(entry, "devmajor", devmajor)
        put(entry, "devminor", devminor)
        return entry

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (spec section "Members")."""
        out: dict[str, Any] = {"path": self.path, "type": str(self.type)}
        if self.mode is not None:
            out["mode"] = format(self.mode, "04o")
        for name in ("uid", "gid", "size", "sha256", "link", "devmajor", "devminor"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.capability is not None:
            out["capability"] = base64.b64encode(self.capability).decode("ascii")
        return out

    @classmethod
    def from_json(cls, obj: object) -> ManifestEntry:
        """Parse one entry object.

        Raises:
            InvalidInput: on unknown members, wrong JSON types or bad values.
        """
        if not isinstance(obj, dict):
            raise InvalidInput("manifest entry is not an object")
        unknown = set(obj) - _COMMON - set(_ALL_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown entry members {sorted(unknown)}")
        path, kind = obj.get("path"), obj.get("type")
        if not isinstance(path, str) or not isinstance(kind, str):
            raise InvalidInput("entry path and type must be strings")
        values: dict[str, Any] = {}
        mode = obj.get("mode")
        if mode is not None:
            if not isinstance(mode, str) or not _MODE.match(mode):
                raise InvalidInput(f"mode must be 4 octal digits at {path!r}: {mode!r}")
            values["mode"] = int(mode, 8)
        for name in ("uid", "gid", "size", "devmajor", "devminor"):
            if name in obj:
                values[name] = obj[name]
        for name in ("sha256", "link"):
            if name in obj:
                if not isinstance(obj[name], str):
                    raise InvalidInput(f"{name} must be a string at {path!r}")
                values[name] = obj[name]
        if "capability" in obj:
            values["capability"] = _b64decode(obj["capability"], path)
        try:
            entry_type = EntryType(kind)
        except ValueError:
            raise InvalidInput(f"unknown entry type {kind!r} at {path!r}") from None
        return cls(path=path, type=entry_type, **values)

    def canonical_bytes(self) -> bytes:
        """JCS bytes of :meth:`to_json`: one leaf of the tree digest."""
        return _dumps(self.to_json())


def _b64decode(value: object, path: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"capability must be a base64 string at {path!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"capability is not base64 at {path!r}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise InvalidInput(f"capability is not canonical base64 at {path!r}")
    return raw


def _dumps(obj: object) -> bytes:
    # Equals RFC 8785 for objects holding only ASCII keys, strings and integers.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


@dataclass(frozen=True)
class FileManifest:
    """The file manifest of one layer: entries sorted by path.

    Paths sort by Unicode code point, which equals UTF-8 byte order. The
    constructor checks the invariants both producers guarantee, so that
    :meth:`from_canonical_bytes` accepts exactly what they can emit.

    Raises:
        InvalidInput: if entries are unsorted or duplicated, a parent
            directory is missing, or a hardlink does not name the first path
            of its group with identical attributes.
    """

    entries: tuple[ManifestEntry, ...]
    _by_path: dict[str, ManifestEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        by_path: dict[str, ManifestEntry] = {}
        previous = ""
        for entry in self.entries:
            if not isinstance(entry, ManifestEntry):
                raise InvalidInput("manifest entries must be ManifestEntry")
            if previous and entry.path <= previous:
                raise InvalidInput(f"entries not sorted or duplicated at {entry.path!r}")
            previous = entry.path
            by_path[entry.path] = entry

        def is_dir(path: str) -> bool:
            found = by_path.get(path)
            return found is not None and found.type in _DIR_TYPES

        for entry in self.entries:
            check_place(entry, is_dir, by_path.get)
        object.__setattr__(self, "_by_path", by_path)

    def get(self, path: str) -> ManifestEntry | None:
        """The entry at ``path``, if any."""
        return self._by_path.get(path)

    def paths(self) -> Iterable[str]:
        """All paths, in manifest order."""
        return (entry.path for entry in self.entries)

    def to_json(self) -> dict[str, Any]:
        """The manifest document as JSON-ready data."""
        return {"entries": [e.to_json() for e in self.entries], "mediaType": MEDIA_TYPE}

    def canonical_bytes(self) -> bytes:
        """The canonical serialization (spec section "Canonical serialization")."""
        return _dumps(self.to_json())

    @property
    def sha256(self) -> str:
        """``sha256:<hex>`` of :meth:`canonical_bytes`; the content address."""
        return sha256_digest(self.canonical_bytes())

    @property
    def tree_digest(self) -> str:
        """``sha256:<hex>`` RFC 6962 Merkle tree hash over the entries' JCS bytes."""
        return "sha256:" + merkle_root([e.canonical_bytes() for e in self.entries]).hex()

    def index_of(self, path: str) -> int:
        """Position of ``path`` among the leaves (for inclusion proofs).

        Raises:
            InvalidInput: if the path is not in the manifest.
        """
        index = bisect.bisect_left(self.entries, path, key=lambda e: e.path)
        if index < len(self.entries) and self.entries[index].path == path:
            return index
        raise InvalidInput(f"path not in manifest: {path!r}")

    def inclusion_proof(self, path: str) -> tuple[int, list[bytes]]:
        """Leaf index and RFC 6962 audit path of ``path`` for :attr:`tree_digest`.

        Check it with :func:`root_from_inclusion_proof` over the entry's
        :meth:`ManifestEntry.canonical_bytes` and ``len(entries)``.

        Raises:
            InvalidInput: if the path is not in the manifest.
        """
        index = self.index_of(path)
        return index, inclusion_proof([e.canonical_bytes() for e in self.entries], index)

    @classmethod
    def from_entries(cls, entries: Iterable[ManifestEntry]) -> FileManifest:
        """Build from entries in any order.

        Raises:
            InvalidInput: as the constructor.
        """
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    @classmethod
    def from_json(cls, doc: object, *, limits: ManifestLimits | None = None) -> FileManifest:
        """Parse the manifest document from decoded JSON data.

        Raises:
            InvalidInput: on a wrong ``mediaType``, unknown members or bad entries.
            TooLarge: if there are more entries than ``limits.max_entries``.
        """
        limits = limits or ManifestLimits()
        if not isinstance(doc, dict) or set(doc) != {"entries", "mediaType"}:
            raise InvalidInput("manifest must be an object with exactly entries and mediaType")
        if doc["mediaType"] != MEDIA_TYPE:
            raise InvalidInput(f"unsupported manifest mediaType {doc['mediaType']!r}")
        raw_entries = doc["entries"]
        if not isinstance(raw_entries, list):
            raise InvalidInput("manifest entries must be an array")
        if len(raw_entries) > limits.max_entries:
            raise TooLarge(f"{len(raw_entries)} entries, limit {limits.max_entries}")
        return cls(tuple(ManifestEntry.from_json(item) for item in raw_entries))

    @classmethod
    def from_canonical_bytes(
        cls, data: bytes, *, limits: ManifestLimits | None = None
    ) -> FileManifest:
        """Strictly parse canonical bytes; anything non-canonical is rejected.

        Accepting only the canonical form makes ``sha256`` unique per manifest.

        Raises:
            InvalidInput: if ``data`` is not JSON, not a valid manifest, or not
                byte-identical to the canonical serialization of what it holds.
            TooLarge: if ``data`` exceeds ``limits.max_manifest_bytes``.
        """
        limits = limits or ManifestLimits()
        doc = loads_strict(
            data, what="manifest", max_bytes=limits.max_manifest_bytes, integers_only=True
        )
        manifest = cls.from_json(doc, limits=limits)
        if manifest.canonical_bytes() != data:
            raise InvalidInput("manifest bytes are not in canonical form")
        return manifest


_INODE_FIELDS = ("mode", "uid", "gid", "size", "sha256", "capability")


def check_place(
    entry: ManifestEntry,
    is_dir: Callable[[str], bool],
    lookup: Callable[[str], ManifestEntry | None],
) -> None:
    """Check where ``entry`` sits against the entries before it.

    A parent must be a directory entry, and a hardlink must name an earlier
    file and repeat its inode attributes (spec "Hardlinks"): a link group is
    written as its first path (type file) plus hardlinks naming it. Both
    :class:`FileManifest` and the compact form check through this one rule.

    Args:
        entry: The entry to place.
        is_dir: Whether a path is a directory (or opaque directory) entry.
        lookup: The entry at a path, or None.

    Raises:
        InvalidInput: if the parent is not a directory entry, or a hardlink
            names no earlier file or differs from it in an inode attribute.
    """
    parent = _parent(entry.path)
    if parent and not is_dir(parent):
        raise InvalidInput(f"parent of {entry.path!r} is not a directory entry")
    if entry.type is not EntryType.HARDLINK:
        return
    link = entry.link or ""
    target = lookup(link)
    if target is None or target.type is not EntryType.FILE or not target.path < entry.path:
        raise InvalidInput(f"hardlink {entry.path!r} must name an earlier file, got {link!r}")
    for name in _INODE_FIELDS:
        if getattr(entry, name) != getattr(target, name):
            raise InvalidInput(f"hardlink {entry.path!r} differs from {target.path!r} in {name}")
