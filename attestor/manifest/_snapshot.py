# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its unpacked overlayfs snapshot directory.

This is the agent's side of spec section "From a snapshot directory". It never
follows a symlink, never leaves the root's filesystem, and re-hashes only files
whose (inode, size, mtime, ctime) changed since the previous sweep.

:func:`compare_snapshot` is the agent's sweep: it compares each entry with
the attested manifest as the walk yields it, so no observed manifest of the
whole layer is ever built (memory: issue 5 sets an 80 MB RSS target with a
50,000-file layer), and it keys the scan state by the attested manifest's own
path strings.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._compact import (
    AttestedManifest,
    compact_unhashed,
    pack_entry,
    unpack_entry,
)
from attestor.manifest._compare import Change, diff_entries
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry, ManifestLimits

__all__ = [
    "FileState",
    "SnapshotCheck",
    "SnapshotState",
    "compare_snapshot",
    "manifest_from_snapshot",
    "scan_snapshot",
]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_CAPABILITY = "security.capability"
_NO_XATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
_entry = ManifestEntry._trusted


# ino, size, mtime_ns, ctime_ns, raw sha256; the capability xattr follows.
_PACK = struct.Struct("<QQqq32s")
_KEY_END = 32  # the (ino, size, mtime_ns, ctime_ns) prefix


@dataclass(frozen=True, slots=True)
class FileState:
    """What the previous sweep saw of one regular file (the decoded form).

    A change of content, mode, owner or xattrs moves ``ctime_ns``, which only
    the kernel sets, so an equal tuple lets the sweep reuse ``sha256`` and
    ``capability``. The state keeps it packed (:meth:`pack`, 97 bytes plus the
    capability, against about 300 for this object with its ints and hex).
    """

    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str
    capability: bytes | None

    def pack(self) -> bytes:
        """The packed form kept in a :data:`SnapshotState`."""
        raw = _PACK.pack(
            self.ino, self.size, self.mtime_ns, self.ctime_ns, bytes.fromhex(self.sha256)
        )
        return raw + (self.capability or b"")

    @classmethod
    def unpack(cls, raw: bytes) -> FileState:
        """Decode a value of a :data:`SnapshotState`."""
        ino, size, mtime_ns, ctime_ns, digest = _PACK.unpack_from(raw)
        return cls(ino, size, mtime_ns, ctime_ns, digest.hex(), raw[_PACK.size :] or None)


#: Path -> packed :class:`FileState` of each regular file (:func:`scan_snapshot`).
SnapshotState = dict[str, bytes]


@dataclass(frozen=True)
class SnapshotCheck:
    """The result of :func:`compare_snapshot`.

    Attributes:
        changes: differences from the attested manifest, in path order.
        state: the state to pass to the next sweep.
        files: regular files seen (hardlinks included).
    """

    changes: tuple[Change, ...]
    state: SnapshotState
    files: int


def _xattrs(path: str | int) -> list[str]:
    try:
        if isinstance(path, int):
            return os.listxattr(path)
        return os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return []
        raise


def _getxattr(path: str | int, name: str, names: list[str]) -> bytes | None:
    if name not in names:
        return None
    try:
        if isinstance(path, int):
            return os.getxattr(path, name) or None
        return os.getxattr(path, name, follow_symlinks=False) or None
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


def _fcapability(fd: int) -> bytes | None:
    # One getxattr instead of listxattr + getxattr: files without the
    # attribute (nearly all) cost one syscall, which the full re-hash of many
    # small files notices (issue 5: >= 80% of hashlib).
    try:
        return os.getxattr(fd, _CAPABILITY) or None
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


def _hash_file(path: str) -> tuple[bytes, bytes | None]:
    # O_NOFOLLOW: the path was a regular file at lstat time; never let a swap
    # for a symlink make us hash something outside the snapshot. The state
    # keeps the lstat taken before this open: a write or a swap after it moves
    # ctime or the inode number, so the next sweep hashes again.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        capability = _fcapability(fd)
        digest = hashlib.file_digest(f, "sha256").digest()
    return digest, capability


class _Walk:
    """One walk of a snapshot directory; each entry goes to ``emit``.

    Entries of files with more than one link are held back (``linked``) until
    the walk ends, because a hardlink group is only known then.
    """

    def __init__(
        self,
        root: Path,
        previous: SnapshotState | None,
        limits: ManifestLimits,
        emit: Callable[[ManifestEntry], None],
        key: Callable[[str], str] = str,
    ) -> None:
        self.root = os.fspath(root)
        self.previous = previous or {}
        self.limits = limits
        self.emit = emit
        self.key = key
        self.count = 0
        self.linked: list[ManifestEntry] = []
        self.state: SnapshotState = {}
        self.inodes: dict[int, list[str]] = {}
        self.total_size = 0

    def run(self) -> None:
        root_st = os.lstat(self.root)
        if not stat.S_ISDIR(root_st.st_mode):
            raise InvalidInput(f"snapshot root is not a directory: {self.root}")
        if _getxattr(self.root, _OPAQUE_XATTR, _xattrs(self.root)) == b"y":
            raise InvalidInput(f"opaque snapshot root is not supported: {self.root}")
        device = root_st.st_dev
        stack = [("", self.root)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            with os.scandir(abs_dir) as it:
                for dirent in it:
                    rel = f"{rel_dir}/{dirent.name}" if rel_dir else dirent.name
                    self._check_text(rel, "path")
                    st = dirent.stat(follow_symlinks=False)
                    if st.st_dev != device:
                        raise InvalidInput(f"{rel!r} is on another filesystem than the snapshot")
                    if self.count >= self.limits.max_entries:
                        raise TooLarge(f"snapshot has more than {self.limits.max_entries} entries")
                    self.count += 1
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((rel, dirent.path))
                    entry = self._entry(rel, dirent.path, st)
                    if entry.type is EntryType.FILE and st.st_nlink > 1:
                        self.linked.append(entry)
                    else:
                        self.emit(entry)

    def _check_text(self, text: str, what: str) -> None:
        # scandir/readlink give undecodable bytes as surrogates; the manifest
        # is UTF-8 only (spec "Paths").
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput(f"{what} is not valid UTF-8: {text!r}") from None
        if size > self.limits.max_path_bytes:
            raise TooLarge(f"{what} is {size} bytes, limit {self.limits.max_path_bytes}")

    def _entry(self, rel: str, path: str, st: os.stat_result) -> ManifestEntry:
        fmt = stat.S_IFMT(st.st_mode)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        if fmt == stat.S_IFREG:
            return self._file(rel, path, st)
        if fmt == stat.S_IFLNK:
            target = os.readlink(path)
            self._check_text(target, "link target")
            return _entry(rel, EntryType.SYMLINK, uid=uid, gid=gid, link=target)
        if fmt == stat.S_IFCHR and st.st_rdev == 0:
            return _entry(rel, EntryType.WHITEOUT)
        names = _xattrs(path)
        capability = _getxattr(path, _CAPABILITY, names)
        if fmt == stat.S_IFDIR:
            opaque = _getxattr(path, _OPAQUE_XATTR, names) == b"y"
            kind = EntryType.OPAQUE_DIR if opaque else EntryType.DIR
            return _entry(rel, kind, mode=mode, uid=uid, gid=gid, capability=capability)
        if fmt in (stat.S_IFCHR, stat.S_IFBLK):
            return _entry(
                rel,
                EntryType.CHARDEV if fmt == stat.S_IFCHR else EntryType.BLOCKDEV,
                mode=mode,
                uid=uid,
                gid=gid,
                capability=capability,
                devmajor=os.major(st.st_rdev),
                devminor=os.minor(st.st_rdev),
            )
        kind = EntryType.FIFO if fmt == stat.S_IFIFO else EntryType.SOCKET
        return _entry(rel, kind, mode=mode, uid=uid, gid=gid, capability=capability)

    def _file(self, rel: str, path: str, st: os.stat_result) -> ManifestEntry:
        key = _PACK.pack(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, b"")[:_KEY_END]
        old = self.previous.get(rel)
        if old is not None and old.startswith(key):
            state = old
        else:
            digest, capability = _hash_file(path)
            state = key + digest + (capability or b"")
        self.total_size += st.st_size
        if self.total_size > self.limits.max_total_size:
            raise TooLarge(f"snapshot content exceeds {self.limits.max_total_size} bytes")
        self.state[self.key(rel)] = state
        if st.st_nlink > 1:
            self.inodes.setdefault(st.st_ino, []).append(rel)
        return _entry(
            rel,
            EntryType.FILE,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size,
            sha256=state[_KEY_END : _PACK.size].hex(),
            capability=state[_PACK.size :] or None,
        )

    def emit_linked(self) -> None:
        # Spec "Hardlinks": the first path of a group (in manifest order) is the
        # file, every other path a hardlink naming it.
        links: dict[str, str] = {}
        for paths in self.inodes.values():
            if len(paths) > 1:
                first = min(paths)
                links.update((p, first) for p in paths if p != first)
        for entry in self.linked:
            group_first = links.get(entry.path)
            if group_first is None:
                self.emit(entry)
            else:
                self.emit(
                    _entry(
                        entry.path,
                        EntryType.HARDLINK,
                        mode=entry.mode,
                        uid=entry.uid,
                        gid=entry.gid,
                        size=entry.size,
                        sha256=entry.sha256,
                        link=group_first,
                        capability=entry.capability,
                    )
                )


def scan_snapshot(
    root: Path,
    previous: SnapshotState | None = None,
    *,
    limits: ManifestLimits | None = None,
) -> tuple[FileManifest, SnapshotState]:
    """Compute the manifest of a snapshot directory, reusing unchanged hashes.

    Args:
        root: the layer's own snapshot directory (``.../snapshots/N/fs``).
        previous: the state returned by the previous sweep, or None for a full
            re-hash.
        limits: caps on entries, path length and total content size.

    Returns:
        The manifest and the state to pass to the next sweep.

    Raises:
        InvalidInput: if the tree cannot be represented (a mount point inside,
            a non-UTF-8 name, an opaque root) or a path cannot be read.
        TooLarge: when a cap in ``limits`` is exceeded.
    """
    entries: list[ManifestEntry] = []
    walk = _Walk(root, previous, limits or ManifestLimits(), entries.append)
    _run(walk)
    return FileManifest.from_entries(entries), walk.state


def _run(walk: _Walk) -> None:
    try:
        walk.run()
        walk.emit_linked()
    except OSError as e:
        raise InvalidInput(f"cannot read snapshot {walk.root!r}: {e}") from e


def compare_snapshot(
    root: Path,
    attested: FileManifest | AttestedManifest,
    previous: SnapshotState | None = None,
    *,
    limits: ManifestLimits | None = None,
) -> SnapshotCheck:
    """Compare a snapshot directory with its attested manifest, reusing unchanged hashes.

    Gives the changes of ``compare_manifests(attested, scan_snapshot(root)[0])``
    without building the observed manifest.

    Args:
        root: the layer's own snapshot directory.
        attested: the layer's verified manifest (the agent keeps the compact form).
        previous: the state of the previous sweep, or None for a full re-hash.
        limits: caps on entries, path length and total content size.

    Raises:
        InvalidInput: as :func:`scan_snapshot`.
        TooLarge: as :func:`scan_snapshot`.
    """
    if isinstance(attested, FileManifest):
        attested = compact_unhashed(attested)
    compact = attested
    changes: list[Change] = []
    # One byte per attested entry instead of a set of paths (issue 5, RSS).
    seen = bytearray(len(compact))
    files = 0

    def emit(entry: ManifestEntry) -> None:
        nonlocal files
        if entry.sha256 is not None:
            files += 1
        index = compact.index(entry.path)
        if index is None:
            changes.append(Change(entry.path, "added", None, str(entry.type)))
            return
        seen[index] = 1
        record = compact.record_at(index)
        if record != pack_entry(entry):  # the common case decodes nothing
            changes.extend(diff_entries(unpack_entry(entry.path, record), entry))

    walk = _Walk(root, previous, limits or ManifestLimits(), emit, compact.key)
    _run(walk)
    if seen.count(0):
        for index in (i for i, hit in enumerate(seen) if not hit):
            entry = unpack_entry(compact.path_at(index), compact.record_at(index))
            changes.append(Change(entry.path, "removed", str(entry.type), None))
    changes.sort(key=lambda c: c.path)
    return SnapshotCheck(tuple(changes), walk.state, files)


def manifest_from_snapshot(root: Path, *, limits: ManifestLimits | None = None) -> FileManifest:
    """Compute the manifest of a snapshot directory, hashing every file.

    Raises:
        InvalidInput: as :func:`scan_snapshot`.
        TooLarge: as :func:`scan_snapshot`.
    """
    return scan_snapshot(root, None, limits=limits)[0]
