# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its uncompressed tar stream.

Headers are read by :mod:`attestor.manifest._tarreader` exactly as Go's
``archive/tar`` (containerd's reader) reads them, or refused. The entries are
replayed in memory the way containerd's overlayfs applier extracts them (spec
section "From a layer tar"): later entries replace earlier ones,
missing parents appear as implicit directories, whiteouts and opaque markers
become what overlayfs stores. File contents are hashed in chunks and never
kept.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Sequence
from typing import BinaryIO

import zstandard

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._model import (
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    check_path,
)
from attestor.manifest._tarreader import TarHeader, TarReader

__all__ = ["manifest_from_tar", "normalize_tar_path"]

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_CAPABILITY = b"security.capability"
_DIR_TYPES = frozenset({EntryType.DIR, EntryType.OPAQUE_DIR})
_PAX_RECORDS_PER_ENTRY = 16
_LOOKUPS_PER_ENTRY = 32
#: What containerd's mkparent gives a missing parent with no lower directory.
IMPLICIT_DIR_MODE = 0o755


# The replay holds one object per path for up to max_entries paths, so both
# classes use __slots__ and a regular file is stored as its _Inode alone
# (most entries are files): no per-entry __dict__, child set or wrapper.
class _Inode:
    """A regular file's content and attributes, shared by its hardlinks."""

    __slots__ = ("capability", "first", "gid", "mode", "sha256", "size", "uid")

    def __init__(
        self, mode: int, uid: int, gid: int, size: int, sha256: str, capability: bytes | None
    ) -> None:
        self.mode, self.uid, self.gid = mode, uid, gid
        self.size, self.sha256, self.capability = size, sha256, capability
        #: The smallest path naming this inode, found when entries are built.
        self.first: str | None = None


class _Node:
    """Any other path; only directories get a set of children, on demand."""

    __slots__ = (
        "capability",
        "children",
        "devmajor",
        "devminor",
        "gid",
        "link",
        "mode",
        "type",
        "uid",
    )

    def __init__(
        self,
        type: EntryType,  # noqa: A002 - the manifest's own field name
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        link: str | None = None,
        capability: bytes | None = None,
        devmajor: int | None = None,
        devminor: int | None = None,
    ) -> None:
        self.type = type
        self.mode, self.uid, self.gid = mode, uid, gid
        self.link, self.capability = link, capability
        self.devmajor, self.devminor = devmajor, devminor
        self.children: set[str] | None = None


def normalize_tar_path(name: str, *, limits: ManifestLimits) -> str:
    """Normalize a tar member name to a manifest path; ``""`` is the root.

    Leading ``./`` and ``/``-runs, ``.`` components and trailing ``/`` go, as
    with Go's ``filepath.Clean``. ``..`` is rejected rather than cleaned: a
    layer has no business naming it.

    Raises:
        InvalidInput: on an absolute path, ``..``, NUL or non-UTF-8 bytes.
    """
    if name.startswith("/"):
        raise InvalidInput(f"absolute path in layer tar: {name[:200]!r}")
    if "\x00" in name:
        raise InvalidInput(f"NUL in tar member name: {name[:200]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"path traversal in layer tar: {name[:200]!r}")
    path = "/".join(parts)
    return check_path(path, limits=limits) if path else ""


def _components(path: str) -> list[str]:
    """``path``'s names without empty and ``.`` ones, last first (a stack)."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


class _Replay:
    """The unpacked layer as a path table, mutated entry by entry."""

    def __init__(self, limits: ManifestLimits, lower: Sequence[FileManifest]) -> None:
        self.limits = limits
        self.lower = lower
        self.nodes: dict[str, _Node | _Inode] = {}
        self.total_size = 0
        self.path_bytes = 0
        self.members = 0
        #: Paths of directory headers: containerd sets their times last.
        self.dir_headers: set[str] = set()
        # Path lookups left for resolving symlinks and checking lower layers;
        # deep paths over many layers must not cost quadratic time.
        self._work = _LOOKUPS_PER_ENTRY * limits.max_entries
        # One int object per distinct mode instead of one per entry.
        self._modes: dict[int, int] = {}

    def spend(self, lookups: int = 1) -> None:
        """Charge path lookups against the layer's budget.

        Raises:
            TooLarge: once the budget is spent.
        """
        self._work -= lookups
        if self._work < 0:
            raise TooLarge("layer needs too many path lookups (deep paths, symlinks, layers)")

    def mode(self, value: int) -> int:
        """``value``'s permission bits, as a shared int object."""
        bits = value & 0o7777
        return self._modes.setdefault(bits, bits)

    def count_path(self, *texts: str) -> None:
        """Charge path and link text against ``max_total_path_bytes``.

        Raises:
            TooLarge: once the layer's names exceed the cap.
        """
        self.path_bytes += sum(len(t.encode()) for t in texts)
        if self.path_bytes > self.limits.max_total_path_bytes:
            raise TooLarge(
                f"layer names and link targets exceed {self.limits.max_total_path_bytes} bytes"
            )

    def _remove(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent:
            siblings = self._children(parent)
            if siblings is not None:
                siblings.discard(path)
        pending = [path]
        while pending:  # iterative: paths may nest ~2000 levels deep
            node = self.nodes.pop(pending.pop())
            if isinstance(node, _Node) and node.children:
                pending.extend(node.children)

    def _children(self, directory: str) -> set[str] | None:
        node = self.nodes[directory]
        return node.children if isinstance(node, _Node) else None

    def _implicit_dir(self, path: str) -> _Node:
        # containerd's mkparent copies mode, owner and non-trusted xattrs from
        # the topmost lower layer holding this path if it is a directory there.
        # It looks in each lower layer's own directory with symlinks resolved
        # inside it, so a lower symlink at or above the path would make it
        # copy another directory, and a lower non-directory above it makes
        # the lookup fail with ENOTDIR: refuse both.
        for layer in self.lower:
            parent = path
            while parent:
                self.spend()
                above = layer.get(parent)
                if above is not None and (
                    above.type is EntryType.SYMLINK
                    or (parent != path and above.type not in _DIR_TYPES)
                ):
                    raise InvalidInput(
                        f"implicit directory {path!r} lies under a lower layer's "
                        f"{above.type.value} {parent!r}"
                    )
                parent = parent.rpartition("/")[0]
            below = layer.get(path)
            if below is None:
                continue
            if below.type in _DIR_TYPES:
                return _Node(
                    EntryType.DIR,
                    mode=below.mode,
                    uid=below.uid,
                    gid=below.gid,
                    capability=below.capability,
                )
            break
        return _Node(EntryType.DIR, mode=IMPLICIT_DIR_MODE, uid=0, gid=0)

    def ensure_parents(self, path: str) -> None:
        missing: list[str] = []
        parent = path.rpartition("/")[0]
        while parent:
            node = self.nodes.get(parent)
            if node is not None:
                kind = node.type if isinstance(node, _Node) else EntryType.FILE
                if kind not in _DIR_TYPES:
                    raise InvalidInput(f"parent of {path!r} is a {kind.value}, not a directory")
                break
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for directory in reversed(missing):
            self.count_path(directory)
            self._insert(directory, self._implicit_dir(directory))

    def _insert(self, path: str, node: _Node | _Inode) -> None:
        if len(self.nodes) >= self.limits.max_entries:
            raise TooLarge(f"layer has more than {self.limits.max_entries} entries")
        self.nodes[path] = node
        parent = path.rpartition("/")[0]
        if parent:
            owner = self.nodes[parent]
            if not isinstance(owner, _Node):  # pragma: no cover - ensure_parents checked
                raise InvalidInput(f"parent of {path!r} is not a directory")
            if owner.children is None:
                owner.children = set()
            owner.children.add(path)

    def put(self, path: str, node: _Node | _Inode) -> None:
        """Place ``node`` at ``path``; a directory over a directory merges."""
        self.ensure_parents(path)
        old = self.nodes.get(path)
        if (
            isinstance(old, _Node)
            and old.type in _DIR_TYPES
            and isinstance(node, _Node)
            and node.type is EntryType.DIR
        ):
            # containerd keeps the directory (and its opaque xattr) and applies
            # the new header's owner, mode and xattrs.
            old.mode, old.uid, old.gid = node.mode, node.uid, node.gid
            if node.capability is not None:
                old.capability = node.capability
            return
        if old is not None:
            self._remove(path)
        self._insert(path, node)

    def set_opaque(self, directory: str) -> None:
        if not directory:
            raise InvalidInput("opaque marker at the layer root is not supported")
        # The marker's own path makes the directory exist (implicitly if needed).
        self.ensure_parents(f"{directory}/{_OPAQUE}")
        node = self.nodes[directory]
        if not isinstance(node, _Node) or node.type not in _DIR_TYPES:
            raise InvalidInput(f"opaque marker under non-directory {directory!r}")
        node.type = EntryType.OPAQUE_DIR

    def check_dir_headers(self) -> None:
        """Require every directory header's path to still resolve at the end.

        After the last entry containerd's applier sets the times of each
        directory the tar listed, at a path resolved with ``fs.RootPath``
        (symlinks followed inside the layer), and fails the unpack if that
        path is gone, e.g. when a later entry replaced an ancestor.

        Raises:
            InvalidInput: when such a path does not resolve.
            TooLarge: when resolving costs more lookups than the budget.
        """
        for path in self.dir_headers:
            if not self._resolves(path):
                raise InvalidInput(
                    f"directory {path!r} does not resolve at the end of the layer "
                    "(containerd's unpack fails setting its times)"
                )

    def _resolves(self, path: str) -> bool:
        # fs.RootPath over the path table: follow symlinks, stay in the root.
        # Targets with ".." are cleaned lexically by Go, so they are not
        # followed here: such a layer is refused.
        pending = _components(path)
        resolved: list[str] = []
        hops = 0
        while pending:
            self.spend()
            part = pending.pop()
            here = "/".join([*resolved, part])
            node = self.nodes.get(here)
            if node is None:
                return False
            if isinstance(node, _Node) and node.type is EntryType.SYMLINK:
                target = node.link or ""
                hops += 1
                if hops > 255 or ".." in target.split("/"):
                    return False
                if target.startswith("/"):
                    resolved = []
                more = _components(target)
                self.spend(len(more))
                pending.extend(more)
                continue
            kind = node.type if isinstance(node, _Node) else EntryType.FILE
            if pending and kind not in _DIR_TYPES:
                return False  # ENOTDIR
            resolved.append(part)
        return True

    def entries(self) -> list[ManifestEntry]:
        """The manifest entries; empties the table as it goes (peak memory).

        A hardlink group's smallest path is its file; the others link to it.
        """
        for path, node in self.nodes.items():
            if isinstance(node, _Inode) and (node.first is None or path < node.first):
                node.first = path
        out: list[ManifestEntry] = []
        while self.nodes:
            path, node = self.nodes.popitem()
            if isinstance(node, _Inode):
                first = node.first
                out.append(
                    ManifestEntry(
                        path=path,
                        type=EntryType.FILE if first == path else EntryType.HARDLINK,
                        mode=node.mode,
                        uid=node.uid,
                        gid=node.gid,
                        size=node.size,
                        sha256=node.sha256,
                        link=None if first == path else first,
                        capability=node.capability,
                    )
                )
            else:
                out.append(
                    ManifestEntry(
                        path=path,
                        type=node.type,
                        mode=node.mode,
                        uid=node.uid,
                        gid=node.gid,
                        link=node.link,
                        capability=node.capability,
                        devmajor=node.devmajor,
                        devminor=node.devminor,
                    )
                )
        return out


def _capability(header: TarHeader) -> bytes | None:
    value = None
    for name, raw in header.xattrs.items():
        if name.startswith(b"trusted."):
            # trusted.overlay.* would forge overlayfs metadata (spec "Rejected").
            raise InvalidInput(f"trusted xattr {name[:100]!r} on {header.name[:200]!r}")
        if name.startswith(b"system."):
            # POSIX ACLs (system.posix_acl_*) grant access beyond the mode
            # bits, and the manifest does not record them.
            raise InvalidInput(f"system xattr {name[:100]!r} on {header.name[:200]!r}")
        if name == _CAPABILITY:
            if not raw:
                # containerd would set it empty, which the kernel refuses.
                raise InvalidInput(f"empty security.capability on {header.name[:200]!r}")
            value = raw
    return value


def _hash_data(reader: TarReader) -> str:
    digest = hashlib.sha256()
    while chunk := reader.read_data():
        digest.update(chunk)
    return digest.hexdigest()


def _apply(replay: _Replay, reader: TarReader, header: TarHeader) -> None:
    limits = replay.limits
    path = normalize_tar_path(header.name, limits=limits)
    replay.count_path(path, header.linkname)
    directory, _, base = path.rpartition("/")
    if _WHITEOUT in directory and any(p.startswith(_WHITEOUT) for p in directory.split("/")):
        # A directory named like a whiteout: containerd creates it, other
        # unpackers (umoci) treat it as a whiteout; no real layer has one.
        raise InvalidInput(f"whiteout name used as a directory in {path!r}")
    if base == _OPAQUE:
        replay.set_opaque(directory)
        return
    if base.startswith(_WHITEOUT):
        name = base[len(_WHITEOUT) :]
        if not name or name.startswith(_WHITEOUT):
            raise InvalidInput(f"unsupported whiteout name {path!r}")
        target = f"{directory}/{name}" if directory else name
        if target in replay.nodes:
            # containerd's overlay applier mknods the whiteout where this
            # layer already put something, and fails with EEXIST.
            raise InvalidInput(f"whiteout {path!r} of a path this layer already created")
        replay.put(target, _Node(EntryType.WHITEOUT))
        return
    if not path:
        return  # containerd ignores the root entry ("./")
    kind = header.typeflag
    mode, uid, gid = replay.mode(header.mode), header.uid, header.gid
    capability = _capability(header)
    if kind == "0":
        replay.total_size += header.size
        if replay.total_size > limits.max_total_size:
            raise TooLarge(f"layer content exceeds {limits.max_total_size} bytes")
        inode = _Inode(mode, uid, gid, header.size, _hash_data(reader), capability)
        replay.put(path, inode)
    elif kind == "5":
        replay.put(path, _Node(EntryType.DIR, mode=mode, uid=uid, gid=gid, capability=capability))
        replay.dir_headers.add(path)
    elif kind == "2":
        if not header.linkname:
            raise InvalidInput(f"bad symlink target at {path!r}")
        replay.put(path, _Node(EntryType.SYMLINK, uid=uid, gid=gid, link=header.linkname))
    elif kind == "1":
        _apply_hardlink(replay, header, path, mode, capability)
    elif kind in ("3", "4"):
        if kind == "3" and header.devmajor == 0 and header.devminor == 0:
            raise InvalidInput(f"character device 0/0 at {path!r} is ambiguous with a whiteout")
        replay.put(
            path,
            _Node(
                EntryType.CHARDEV if kind == "3" else EntryType.BLOCKDEV,
                mode=mode,
                uid=uid,
                gid=gid,
                capability=capability,
                devmajor=header.devmajor,
                devminor=header.devminor,
            ),
        )
    else:  # "6": TarReader returns no other type
        replay.put(path, _Node(EntryType.FIFO, mode=mode, uid=uid, gid=gid, capability=capability))


def _apply_hardlink(
    replay: _Replay, header: TarHeader, path: str, mode: int, capability: bytes | None
) -> None:
    target = normalize_tar_path(header.linkname, limits=replay.limits)
    inode = replay.nodes.get(target)
    if not isinstance(inode, _Inode) or target == path:
        raise InvalidInput(f"hardlink {path!r} must name an earlier regular file, not {target!r}")
    # containerd lchowns the shared inode from the link's own header and sets
    # its xattrs; chmod follows only if os.Lstat(linkname) succeeds relative to
    # the daemon's working directory. So require the header to agree with the
    # inode, and refuse set-id inodes, whose bits the chown clears (spec
    # "Hardlinks").
    if (mode, header.uid, header.gid, capability) != (
        inode.mode,
        inode.uid,
        inode.gid,
        inode.capability,
    ):
        raise InvalidInput(f"hardlink {path!r} header attributes differ from {target!r}")
    if inode.mode & 0o4000 or (inode.mode & 0o2010) == 0o2010:
        raise InvalidInput(
            f"hardlink {path!r} to set-id file {target!r}: containerd's unpack is host-dependent"
        )
    replay.put(path, inode)


def manifest_from_tar(
    stream: BinaryIO,
    *,
    limits: ManifestLimits | None = None,
    lower: Sequence[FileManifest] = (),
) -> FileManifest:
    """Compute the file manifest of an uncompressed layer tar, in one pass.

    Headers are read as Go's ``archive/tar`` (containerd's unpack) reads them,
    and anything it could read differently is refused (see
    :mod:`attestor.manifest._tarreader`). The stream is read to its end (past
    the tar's end-of-archive blocks, which must be zeros) so that a hashing
    wrapper around it sees every byte, e.g. for the diffID.

    Args:
        stream: the uncompressed layer tar (see :func:`open_decompressed`).
        limits: caps on entries, path length, name bytes, header size and
            total content size.
        lower: the manifests of the layers below this one, topmost first.
            Only used for directories the tar does not list: containerd gives
            them the mode and owner of the same directory in a lower layer
            (spec "Implicit directories"). Pass ``()`` for the bottom layer.

    Raises:
        InvalidInput: on a malformed tar or a member the spec rejects.
        TooLarge: when a cap in ``limits`` is exceeded.
    """
    limits = limits or ManifestLimits()
    replay = _Replay(limits, lower)
    reader = TarReader(
        stream,
        max_meta_bytes=limits.max_tar_header_bytes,
        # Real layers carry a few records per entry (path, times, xattrs).
        max_pax_records=_PAX_RECORDS_PER_ENTRY * limits.max_entries,
    )
    try:
        while (header := reader.next()) is not None:
            replay.members += 1
            if replay.members > limits.max_entries:
                raise TooLarge(f"layer has more than {limits.max_entries} members")
            _apply(replay, reader, header)
        reader.finish()
        replay.check_dir_headers()
    except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as e:
        raise InvalidInput(f"malformed layer tar: {e}") from e
    return FileManifest.from_entries(replay.entries())
