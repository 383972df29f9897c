# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its unpacked overlayfs snapshot directory.

This is the agent's side of spec section "From a snapshot directory". It never
follows a symlink, never leaves the root's filesystem, and re-hashes only files
whose (inode, size, mtime, ctime) changed since the previous sweep.

:func:`scan_snapshot` builds the whole manifest (the server's tests, the
upperdir drift check); the agent's layer sweep, which compares as it walks,
is :func:`attestor.manifest._sweep.compare_snapshot` on the same walk.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry, ManifestLimits

__all__ = [
    "FileState",
    "SnapshotState",
    "SnapshotWalk",
    "manifest_from_snapshot",
    "run_walk",
    "scan_snapshot",
]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_CAPABILITY = "security.capability"
_NO_XATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
_entry = ManifestEntry._trusted


# ino, size, mtime_ns, ctime_ns, raw sha256; the capability xattr follows.
_PACK = struct.Struct("<QQqq32s")
_KEY_END = 32  # the (ino, size, mtime_ns, ctime_ns) prefix


def _key(st: os.stat_result) -> bytes:
    return _PACK.pack(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, b"")[:_KEY_END]


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
    # listxattr first: a file without xattrs (nearly all) costs one syscall
    # and no exception; getxattr's ENODATA OSError costs four times as much,
    # which a full re-hash of many small files notices (issue 5: >= 80% of hashlib).
    try:
        if _CAPABILITY not in os.listxattr(fd):
            return None
        return os.getxattr(fd, _CAPABILITY) or None
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


#: Read size of the file hashing loop (one buffer per walk, reused for every file).
_BUFFER = 256 * 1024
# O_NOFOLLOW: the path was a regular file (or a directory) at lstat time;
# never let a swap for a symlink make us read something outside the snapshot.
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = _OPEN | os.O_DIRECTORY


class _Hasher:
    """Hashes files through one reused buffer.

    ``hashlib.file_digest`` allocates (and the kernel zeroes) a 256 KiB buffer
    per file, and ``open()`` builds two objects; for a layer of small files
    that per-file cost is most of the gap to raw sha256 (issue 5: >= 80%).
    """

    def __init__(self) -> None:
        self.buffer = bytearray(_BUFFER)
        self.buffers = [self.buffer]
        self.view = memoryview(self.buffer)

    def digest(self, name: str, dir_fd: int, fd: int, size: int) -> bytes:
        """Raw sha256 of the file ``name`` in ``dir_fd`` followed by its capability, if any.

        ``fd`` is the file already open (the caller closes it), or -1; ``size``
        is the size the caller's stat gave. The caller keeps that stat: a write
        or a swap after it moves ctime or the inode number, so the next sweep
        hashes again.
        """
        own = fd < 0
        if own:
            fd = os.open(name, _OPEN, dir_fd=dir_fd)
        try:
            capability = _fcapability(fd)
            h = hashlib.sha256()
            view, buffers, readv, full = self.view, self.buffers, os.readv, _BUFFER
            done = 0
            while n := readv(fd, buffers):
                h.update(view[:n])
                done += n
                # A short read that ends at the stat's size is the end of the
                # file: skip the read that would return 0 (one syscall per file).
                if n < full and done == size:
                    break
        finally:
            if own:
                os.close(fd)
        return h.digest() + (capability or b"")


def _same_device(st: os.stat_result, device: int, rel: str) -> None:
    if st.st_dev != device:
        raise InvalidInput(f"{rel!r} is on another filesystem than the snapshot")


class SnapshotWalk:
    """One walk of a snapshot directory; each entry goes to :meth:`emit`.

    The one walk of the spec's section 7 (no symlink followed, no other
    filesystem, descriptor-relative opens), shared by :func:`scan_snapshot`,
    the agent's layer sweep and its upperdir drift check; run it with
    :func:`run_walk`. Subclasses override :meth:`emit` (each entry),
    :meth:`_regular` (a regular file's entry, e.g. to compare or skip hashing)
    and :meth:`_reuse`/:meth:`_keep` (the per-file state kept between sweeps).
    Entries of files with more than one link are held back (``linked``) until
    the walk ends, because a hardlink group is only known then.
    """

    def __init__(
        self,
        root: Path,
        previous: SnapshotState | None,
        limits: ManifestLimits,
        *,
        open_first: bool,
    ) -> None:
        self.root = os.fspath(root)
        self.previous = previous or {}
        self.limits = limits
        #: Every regular file will be hashed: open it first and fstat the fd.
        self.open_first = open_first
        self.entries: list[ManifestEntry] = []
        self.count = 0
        self.linked: list[ManifestEntry] = []
        self.state: SnapshotState = {}
        self.inodes: dict[int, list[str]] = {}
        self.total_size = 0
        #: Bytes read and hashed by this walk (unchanged files cost nothing).
        self.hashed = 0
        self.hasher = _Hasher()

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
            # Entries are stat'ed and files opened relative to the directory's
            # fd: no path lookup from the root per file (a third of the cost
            # of open() on a deep snapshot path).
            dir_fd = os.open(abs_dir, _OPEN_DIR)
            try:
                self._directory(rel_dir, abs_dir, dir_fd, stack, device)
            finally:
                os.close(dir_fd)

    def _directory(
        self, rel_dir: str, abs_dir: str, dir_fd: int, stack: list[tuple[str, str]], device: int
    ) -> None:
        max_entries, max_path = self.limits.max_entries, self.limits.max_path_bytes
        regular, open_first = self._regular, self.open_first
        with os.scandir(dir_fd) as it:
            for dirent in it:
                name = dirent.name
                rel = f"{rel_dir}/{name}" if rel_dir else name
                # scandir gives undecodable bytes as surrogates; the manifest
                # is UTF-8 only (spec "Paths").
                try:
                    size = len(rel.encode("utf-8"))
                except UnicodeEncodeError:
                    raise InvalidInput(f"path is not valid UTF-8: {rel!r}") from None
                if size > max_path:
                    raise TooLarge(f"path is {size} bytes, limit {max_path}")
                if self.count >= max_entries:
                    raise TooLarge(f"snapshot has more than {max_entries} entries")
                self.count += 1
                # d_type says regular (no syscall): open + fstat costs one
                # syscall less than lstat + open, and the stat is of the very
                # inode read. Anything else, or a race, takes the lstat path.
                if open_first and dirent.is_file(follow_symlinks=False):
                    try:
                        # O_NONBLOCK: a file swapped for a FIFO must not block us.
                        fd = os.open(name, _OPEN | os.O_NONBLOCK, dir_fd=dir_fd)
                    except OSError:
                        fd = -1  # gone, or now a symlink (ELOOP): lstat decides
                    if fd >= 0:
                        try:
                            st = os.fstat(fd)
                            if stat.S_ISREG(st.st_mode) and st.st_dev == device:
                                regular(rel, name, dir_fd, st, fd)
                                continue
                        finally:
                            os.close(fd)
                st = dirent.stat(follow_symlinks=False)
                _same_device(st, device, rel)
                if stat.S_ISREG(st.st_mode):
                    regular(rel, name, dir_fd, st, -1)
                    continue
                path = f"{abs_dir}/{name}"
                if stat.S_ISDIR(st.st_mode):
                    stack.append((rel, path))
                self.emit(self._entry(rel, path, st))

    def emit(self, entry: ManifestEntry) -> None:
        """Take one entry of the walk (a method, not a stored callback: no cycle)."""
        self.entries.append(entry)

    def _check_text(self, text: str, what: str) -> None:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput(f"{what} is not valid UTF-8: {text!r}") from None
        if size > self.limits.max_path_bytes:
            raise TooLarge(f"{what} is {size} bytes, limit {self.limits.max_path_bytes}")

    def _entry(self, rel: str, path: str, st: os.stat_result) -> ManifestEntry:
        fmt = stat.S_IFMT(st.st_mode)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
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

    def _regular(self, rel: str, name: str, dir_fd: int, st: os.stat_result, fd: int) -> None:
        entry = self._file(rel, name, dir_fd, st, fd)
        if st.st_nlink > 1:
            self.linked.append(entry)
        else:
            self.emit(entry)

    def _add_size(self, size: int) -> None:
        self.total_size += size
        if self.total_size > self.limits.max_total_size:
            raise TooLarge(f"snapshot content exceeds {self.limits.max_total_size} bytes")

    def _file(self, rel: str, name: str, dir_fd: int, st: os.stat_result, fd: int) -> ManifestEntry:
        self._add_size(st.st_size)
        digest = self._reuse(rel, st)
        if digest is None:
            digest = self.hasher.digest(name, dir_fd, fd, st.st_size)
            self.hashed += st.st_size
            self._keep(rel, st, digest)
        if st.st_nlink > 1:
            self.inodes.setdefault(st.st_ino, []).append(rel)
        return _entry(
            rel,
            EntryType.FILE,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size,
            sha256=digest[:32].hex(),
            capability=digest[32:] or None,
        )

    def _reuse(self, rel: str, st: os.stat_result) -> bytes | None:
        """The previous digest + capability of ``rel`` if its lstat still matches (then kept)."""
        old = self.previous.get(rel)
        if old is not None and old.startswith(_key(st)):
            # The very value is kept: LayerChecker counts re-hashed bytes by identity.
            self.state[rel] = old
            return old[_KEY_END:]
        return None

    def _keep(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        """Remember a freshly hashed ``digest`` + capability of ``rel`` for the next sweep."""
        self.state[rel] = _key(st) + digest

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
    walk = SnapshotWalk(root, previous, limits or ManifestLimits(), open_first=not previous)
    run_walk(walk)
    return FileManifest.from_entries(walk.entries), walk.state


def run_walk(walk: SnapshotWalk) -> None:
    """Walk the whole snapshot, then emit the held-back hardlink groups.

    Raises:
        InvalidInput: the snapshot cannot be read, or breaks the walk's rules
            (another filesystem, a path or entry count over the limits).
    """
    try:
        walk.run()
        walk.emit_linked()
    except OSError as e:
        raise InvalidInput(f"cannot read snapshot {walk.root!r}: {e}") from e


def manifest_from_snapshot(root: Path, *, limits: ManifestLimits | None = None) -> FileManifest:
    """Compute the manifest of a snapshot directory, hashing every file.

    Raises:
        InvalidInput: as :func:`scan_snapshot`.
        TooLarge: as :func:`scan_snapshot`.
    """
    return scan_snapshot(root, None, limits=limits)[0]
