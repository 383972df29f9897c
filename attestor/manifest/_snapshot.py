# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its unpacked overlayfs snapshot directory.

This is the agent's side of spec section "From a snapshot directory". It never
follows a symlink, never leaves the root's filesystem, and re-hashes only files
whose (inode, size, mtime, ctime) changed since the previous sweep.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry, ManifestLimits

__all__ = ["FileState", "SnapshotState", "manifest_from_snapshot", "scan_snapshot"]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_CAPABILITY = "security.capability"
_NO_XATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
_entry = ManifestEntry._trusted


@dataclass(frozen=True, slots=True)
class FileState:
    """What the previous sweep saw of one regular file.

    A change of content, mode, owner or xattrs moves ``ctime_ns``, which only
    the kernel sets, so an equal tuple lets the sweep reuse ``sha256`` and
    ``capability``.
    """

    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str
    capability: bytes | None


#: Path -> state of each regular file, as returned by :func:`scan_snapshot`.
SnapshotState = dict[str, FileState]


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


def _hash_file(path: str) -> tuple[str, bytes | None]:
    # O_NOFOLLOW: the path was a regular file at lstat time; never let a swap
    # for a symlink make us hash something outside the snapshot. The state
    # keeps the lstat taken before this open: a write or a swap after it moves
    # ctime or the inode number, so the next sweep hashes again.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        capability = _getxattr(fd, _CAPABILITY, _xattrs(fd))
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return digest, capability


class _Walk:
    def __init__(self, root: Path, previous: SnapshotState | None, limits: ManifestLimits) -> None:
        self.root = os.fspath(root)
        self.previous = previous or {}
        self.limits = limits
        self.entries: list[ManifestEntry] = []
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
                    if len(self.entries) >= self.limits.max_entries:
                        raise TooLarge(f"snapshot has more than {self.limits.max_entries} entries")
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((rel, dirent.path))
                    self.entries.append(self._entry(rel, dirent.path, st))

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
        old = self.previous.get(rel)
        if old is not None and (old.ino, old.size, old.mtime_ns, old.ctime_ns) == (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            state = old
        else:
            digest, capability = _hash_file(path)
            state = FileState(
                st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest, capability
            )
        self.total_size += state.size
        if self.total_size > self.limits.max_total_size:
            raise TooLarge(f"snapshot content exceeds {self.limits.max_total_size} bytes")
        self.state[rel] = state
        if st.st_nlink > 1:
            self.inodes.setdefault(st.st_ino, []).append(rel)
        return _entry(
            rel,
            EntryType.FILE,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=state.size,
            sha256=state.sha256,
            capability=state.capability,
        )

    def link_groups(self) -> list[ManifestEntry]:
        # Spec "Hardlinks": the first path of a group (in manifest order) is the
        # file, every other path a hardlink naming it.
        links: dict[str, str] = {}
        for paths in self.inodes.values():
            if len(paths) > 1:
                first = min(paths)
                links.update((p, first) for p in paths if p != first)
        if not links:
            return self.entries
        out: list[ManifestEntry] = []
        for entry in self.entries:
            group_first = links.get(entry.path)
            if group_first is None:
                out.append(entry)
            else:
                out.append(
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
        return out


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
    walk = _Walk(root, previous, limits or ManifestLimits())
    try:
        walk.run()
    except OSError as e:
        raise InvalidInput(f"cannot read snapshot {os.fspath(root)!r}: {e}") from e
    return FileManifest.from_entries(walk.link_groups()), walk.state


def manifest_from_snapshot(root: Path, *, limits: ManifestLimits | None = None) -> FileManifest:
    """Compute the manifest of a snapshot directory, hashing every file.

    Raises:
        InvalidInput: as :func:`scan_snapshot`.
        TooLarge: as :func:`scan_snapshot`.
    """
    return scan_snapshot(root, None, limits=limits)[0]
