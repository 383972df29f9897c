# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its uncompressed tar stream.

The tar is replayed in memory the way containerd's overlayfs applier extracts
it (spec section "From a layer tar"): later entries replace earlier ones,
missing parents appear as implicit directories, whiteouts and opaque markers
become what overlayfs stores. File contents are hashed in chunks and never
kept.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import zstandard

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._model import (
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    check_path,
)

__all__ = ["manifest_from_tar", "normalize_tar_path"]

_CHUNK = 1 << 20
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_XATTR = "SCHILY.xattr."
_CAPABILITY = "security.capability"
_DIR_TYPES = frozenset({EntryType.DIR, EntryType.OPAQUE_DIR})
#: What containerd's mkparent gives a missing parent with no lower directory.
IMPLICIT_DIR_MODE = 0o755


@dataclass
class _Inode:
    mode: int
    uid: int
    gid: int
    size: int
    sha256: str
    capability: bytes | None


@dataclass
class _Node:
    type: EntryType
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    link: str | None = None
    capability: bytes | None = None
    devmajor: int | None = None
    devminor: int | None = None
    inode: _Inode | None = None
    children: set[str] = field(default_factory=set)


class _ForwardReader(io.RawIOBase):
    """A non-seekable stream that lets ``tarfile.TarFile`` seek forward.

    tarfile's own stream mode (``"r|"``) copies every byte through a small
    buffer and runs at about a quarter of hashlib's speed (bench); TarFile in
    mode ``"r"`` reads members directly but needs ``seek``/``tell``. Reading
    a layer in order only ever seeks forward, which we do by discarding.
    """

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._pos = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """True: forward seeks only (see the class docstring)."""
        return True

    def tell(self) -> int:
        """Bytes consumed so far."""
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative or None)."""
        data = self._inner.read() if size is None or size < 0 else self._inner.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move forward to ``offset`` by reading and discarding.

        Raises:
            InvalidInput: on a backward seek, which a well-formed tar never needs.
        """
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise InvalidInput(f"tar reader cannot seek back to {target} from {self._pos}")
        while self._pos < target:
            if not self.read(min(_CHUNK, target - self._pos)):
                break  # tarfile reports the truncation itself
        return self._pos


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


class _Replay:
    """The unpacked layer as a path table, mutated entry by entry."""

    def __init__(self, limits: ManifestLimits, lower: Sequence[FileManifest]) -> None:
        self.limits = limits
        self.lower = lower
        self.nodes: dict[str, _Node] = {}
        self.root_children: set[str] = set()
        self.total_size = 0
        self.members = 0

    def _children_of(self, parent: str) -> set[str]:
        return self.nodes[parent].children if parent else self.root_children

    def _remove(self, path: str) -> None:
        self._children_of(path.rpartition("/")[0]).discard(path)
        pending = [path]
        while pending:  # iterative: paths may nest ~2000 levels deep
            node = self.nodes.pop(pending.pop())
            pending.extend(node.children)

    def _implicit_dir(self, path: str) -> _Node:
        # containerd's mkparent copies mode, owner and non-trusted xattrs from
        # the topmost lower layer holding this path if it is a directory there.
        for layer in self.lower:
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
                if node.type not in _DIR_TYPES:
                    raise InvalidInput(
                        f"parent of {path!r} is a {node.type.value}, not a directory"
                    )
                break
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for directory in reversed(missing):
            self._insert(directory, self._implicit_dir(directory))

    def _insert(self, path: str, node: _Node) -> None:
        if len(self.nodes) >= self.limits.max_entries:
            raise TooLarge(f"layer has more than {self.limits.max_entries} entries")
        self.nodes[path] = node
        self._children_of(path.rpartition("/")[0]).add(path)

    def put(self, path: str, node: _Node) -> None:
        """Place ``node`` at ``path``; a directory over a directory merges."""
        self.ensure_parents(path)
        old = self.nodes.get(path)
        if old is not None and old.type in _DIR_TYPES and node.type is EntryType.DIR:
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
        if node.type not in _DIR_TYPES:
            raise InvalidInput(f"opaque marker under non-directory {directory!r}")
        node.type = EntryType.OPAQUE_DIR

    def entries(self) -> list[ManifestEntry]:
        out: list[ManifestEntry] = []
        groups: dict[int, list[str]] = {}
        for path, node in self.nodes.items():
            if node.inode is not None:
                groups.setdefault(id(node.inode), []).append(path)
        first_of: dict[int, str] = {key: min(paths) for key, paths in groups.items()}
        for path, node in self.nodes.items():
            inode = node.inode
            if inode is not None:
                first = first_of[id(inode)]
                out.append(
                    ManifestEntry(
                        path=path,
                        type=EntryType.FILE if first == path else EntryType.HARDLINK,
                        mode=inode.mode,
                        uid=inode.uid,
                        gid=inode.gid,
                        size=inode.size,
                        sha256=inode.sha256,
                        link=None if first == path else first,
                        capability=inode.capability,
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


def _capability(member: tarfile.TarInfo) -> bytes | None:
    value = None
    for key, raw in member.pax_headers.items():
        if not key.startswith(_XATTR):
            continue
        name = key[len(_XATTR) :]
        if name.startswith("trusted."):
            # trusted.overlay.* would forge overlayfs metadata (spec "Rejected").
            raise InvalidInput(f"trusted xattr {name!r} on {member.name[:200]!r}")
        if name == _CAPABILITY:
            # tarfile decodes binary PAX values with surrogateescape.
            value = raw.encode("utf-8", "surrogateescape") or None
    return value


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    reader = tar.extractfile(member)
    if reader is None:  # pragma: no cover - regular members always have data
        raise InvalidInput(f"no data for {member.name[:200]!r}")
    digest = hashlib.sha256()
    remaining = member.size
    while remaining:
        chunk = reader.read(min(_CHUNK, remaining))
        if not chunk:
            raise InvalidInput(f"truncated data for {member.name[:200]!r}")
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def _apply(replay: _Replay, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    limits = replay.limits
    path = normalize_tar_path(member.name, limits=limits)
    base = path.rpartition("/")[2]
    directory = path.rpartition("/")[0]
    if base == _OPAQUE:
        replay.set_opaque(directory)
        return
    if base.startswith(_WHITEOUT):
        name = base[len(_WHITEOUT) :]
        if not name or name.startswith(_WHITEOUT):
            raise InvalidInput(f"unsupported whiteout name {path!r}")
        target = f"{directory}/{name}" if directory else name
        replay.put(target, _Node(EntryType.WHITEOUT))
        return
    if not path:
        return  # containerd ignores the root entry ("./")
    mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
    capability = _capability(member)
    if member.type in (tarfile.GNUTYPE_SPARSE,) or "GNU.sparse.map" in member.pax_headers:
        raise InvalidInput(f"sparse tar member {path!r} is not supported")
    if member.isreg():
        replay.total_size += member.size
        if replay.total_size > limits.max_total_size:
            raise TooLarge(f"layer content exceeds {limits.max_total_size} bytes")
        inode = _Inode(mode, uid, gid, member.size, _hash_member(tar, member), capability)
        replay.put(path, _Node(EntryType.FILE, inode=inode))
    elif member.isdir():
        replay.put(path, _Node(EntryType.DIR, mode=mode, uid=uid, gid=gid, capability=capability))
    elif member.issym():
        if not member.linkname or "\x00" in member.linkname:
            raise InvalidInput(f"bad symlink target at {path!r}")
        replay.put(path, _Node(EntryType.SYMLINK, uid=uid, gid=gid, link=member.linkname))
    elif member.islnk():
        _apply_hardlink(replay, member, path, mode, uid, gid, capability)
    elif member.ischr() or member.isblk():
        if member.ischr() and member.devmajor == 0 and member.devminor == 0:
            raise InvalidInput(f"character device 0/0 at {path!r} is ambiguous with a whiteout")
        kind = EntryType.CHARDEV if member.ischr() else EntryType.BLOCKDEV
        replay.put(
            path,
            _Node(
                kind,
                mode=mode,
                uid=uid,
                gid=gid,
                capability=capability,
                devmajor=member.devmajor,
                devminor=member.devminor,
            ),
        )
    elif member.isfifo():
        replay.put(path, _Node(EntryType.FIFO, mode=mode, uid=uid, gid=gid, capability=capability))
    else:
        raise InvalidInput(f"unsupported tar member type {member.type!r} at {path!r}")


def _apply_hardlink(
    replay: _Replay,
    member: tarfile.TarInfo,
    path: str,
    mode: int,
    uid: int,
    gid: int,
    capability: bytes | None,
) -> None:
    target = normalize_tar_path(member.linkname, limits=replay.limits)
    node = replay.nodes.get(target)
    if node is None or node.inode is None or target == path:
        raise InvalidInput(f"hardlink {path!r} must name an earlier regular file, not {target!r}")
    inode = node.inode
    # containerd lchowns the shared inode from the link's own header and sets
    # its xattrs; chmod follows only if os.Lstat(linkname) succeeds relative to
    # the daemon's working directory. So require the header to agree with the
    # inode, and refuse set-id inodes, whose bits the chown clears (spec
    # "Hardlinks").
    if (mode, uid, gid, capability) != (inode.mode, inode.uid, inode.gid, inode.capability):
        raise InvalidInput(f"hardlink {path!r} header attributes differ from {target!r}")
    if inode.mode & 0o4000 or (inode.mode & 0o2010) == 0o2010:
        raise InvalidInput(
            f"hardlink {path!r} to set-id file {target!r}: containerd's unpack is host-dependent"
        )
    replay.put(path, _Node(EntryType.FILE, inode=inode))


def manifest_from_tar(
    stream: BinaryIO,
    *,
    limits: ManifestLimits | None = None,
    lower: Sequence[FileManifest] = (),
) -> FileManifest:
    """Compute the file manifest of an uncompressed layer tar, in one pass.

    The stream is read to its end (past the tar's end-of-archive blocks) so
    that a hashing wrapper around it sees every byte, e.g. for the diffID.

    Args:
        stream: the uncompressed layer tar (see :func:`open_decompressed`).
        limits: caps on entries, path length and total content size.
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
    reader = _ForwardReader(stream)
    try:
        tar = tarfile.TarFile(
            fileobj=cast(BinaryIO, reader),
            mode="r",
            encoding="utf-8",
            errors="surrogateescape",
        )
        with tar:
            while (member := tar.next()) is not None:
                replay.members += 1
                if replay.members > limits.max_entries:
                    raise TooLarge(f"layer has more than {limits.max_entries} members")
                _apply(replay, tar, member)
                # TarFile keeps every TarInfo; drop them, we hold our own table.
                tar.members.clear()  # type: ignore[attr-defined]
        while stream.read(_CHUNK):
            pass
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as e:
        raise InvalidInput(f"malformed layer tar: {e}") from e
    except UnicodeEncodeError as e:
        raise InvalidInput(f"tar member name is not UTF-8: {e}") from e
    return FileManifest.from_entries(replay.entries())
