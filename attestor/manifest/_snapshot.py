# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its unpacked overlayfs snapshot directory.

This is the agent's side of spec section "From a snapshot directory". It never
follows a symlink, never leaves the root's filesystem, and re-hashes only files
whose (inode, size, mtime, ctime) changed since the previous sweep. What it
cannot read (a name that is not UTF-8, a path over the limit, an unreadable
entry, a directory replaced by a symlink mid-walk) is recorded in
:attr:`SnapshotWalk.unscannable` and skipped, and the rest is still walked:
one bad name must not hide a tampered file beside it. A cap on entries or
bytes stops the walk; that is recorded too. :func:`scan_snapshot` (the whole
manifest) refuses such a tree; the agent's layer sweep
(:func:`attestor.manifest._sweep.compare_snapshot`) and drift check report it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._dirfd import DirChain, open_root
from attestor.manifest._filekey import FILE_KEY, FileState, SnapshotState, file_key
from attestor.manifest._hashpipe import HashPipe, pipe_wanted
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry
from attestor.manifest._unscannable import MAX_UNSCANNABLE, Unscannable, shown_path
from attestor.manifest._walk_io import (
    CAPABILITY,
    OPAQUE_XATTR,
    OPEN_FILE,
    EntryChanged,
    Hasher,
    entry_xattrs,
    getxattr,
    xattrs,
)

__all__ = [
    "FileState",
    "SnapshotState",
    "SnapshotWalk",
    "manifest_from_snapshot",
    "run_walk",
    "scan_snapshot",
]

_entry = ManifestEntry._trusted


class _Stop(Exception):
    """Ends the walk early: the rest of the tree is not looked at."""


class SnapshotWalk:
    """One walk of a snapshot directory; each entry goes to :meth:`emit`.

    The one walk of the spec's section 7 (no symlink followed, no other
    filesystem, every open relative to a directory descriptor reached from
    the root by ``O_NOFOLLOW`` opens), shared by :func:`scan_snapshot`, the
    agent's layer sweep and its upperdir drift check; run it with
    :func:`run_walk`. Its public extension points, for walks built on it:
    :meth:`emit` (each entry), :meth:`regular_file` (e.g. to compare or skip
    hashing) and :meth:`reuse_digest`/:meth:`keep_digest` (per-file state kept
    between sweeps); the walk itself and its unscannable records are not hooks.
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
        self.hasher = Hasher(HashPipe() if pipe_wanted() else None)
        #: What could not be checked (at most MAX_UNSCANNABLE, then a count).
        self.unscannable: list[Unscannable] = []
        self.unscannable_more = 0
        #: The walk stopped before the end (a cap, or an unusable root).
        self.truncated = False
        #: Directories whose contents were not walked (their paths, as walked).
        self.skipped_dirs: list[str] = []
        #: More directories were skipped than ``skipped_dirs`` keeps.
        self.skips_lost = False
        #: Stop at the first unscannable entry (:func:`scan_snapshot` refuses the tree).
        self.strict = False

    def run(self) -> None:
        """Walk the tree; what cannot be read is recorded, not raised."""
        try:
            try:
                try:
                    root_fd = open_root(self.root)
                except OSError as e:
                    self._record(None, f"snapshot root cannot be opened: {e.strerror}")
                    raise _Stop from None
                try:
                    self._walk(root_fd)
                finally:
                    os.close(root_fd)
            except _Stop:
                self.truncated = True
            # The files read before a stop count as well: their hashes too.
            self.hasher.finish()
        finally:
            self.hasher.close()
        if self.unscannable_more:
            self.unscannable.append(
                Unscannable(None, f"{self.unscannable_more} more entries could not be checked")
            )
            self.unscannable_more = 0

    def _record(self, rel: str | None, reason: str, *, too_large: bool = False) -> None:
        if len(self.unscannable) < MAX_UNSCANNABLE:
            path = None if rel is None else shown_path(rel)
            self.unscannable.append(Unscannable(path, reason, too_large))
        else:
            self.unscannable_more += 1
        if self.strict:
            raise _Stop

    def _stop(self, reason: str) -> None:
        """A cap was hit: record it for the whole snapshot and end the walk (raises _Stop)."""
        self._record(None, f"{reason}; the rest of the snapshot was not checked", too_large=True)
        raise _Stop

    def _skip_dir(self, rel: str, reason: str) -> None:
        self._not_entered(rel)
        self._record(rel, reason)

    def _not_entered(self, rel: str) -> None:
        if len(self.skipped_dirs) < MAX_UNSCANNABLE:
            self.skipped_dirs.append(rel)
        else:
            self.skips_lost = True

    def _walk(self, root_fd: int) -> None:
        root_st = os.fstat(root_fd)
        if getxattr(root_fd, OPAQUE_XATTR, xattrs(root_fd)) == b"y":
            self._record(None, "opaque snapshot root is not supported")
            raise _Stop
        device = root_st.st_dev
        chain = DirChain(root_fd)
        stack = [""]
        try:
            while stack:
                rel_dir = stack.pop()
                if not rel_dir:
                    try:
                        self._directory("", root_fd, stack, device)
                    except OSError as e:
                        self._record(None, f"snapshot root cannot be read: {e.strerror}")
                        raise _Stop from None
                    continue
                try:
                    dir_fd, owned = chain.open(rel_dir.split("/"))
                except OSError as e:
                    self._unopened(rel_dir, e)
                    continue
                try:
                    self._open_directory(rel_dir, dir_fd, stack, device)
                except OSError as e:
                    self._skip_dir(rel_dir, f"directory cannot be read: {e.strerror}")
                finally:
                    if owned:
                        os.close(dir_fd)
        finally:
            chain.close()

    def _unopened(self, rel: str, error: OSError) -> None:
        if error.errno == errno.ENOENT:
            return  # gone since it was listed: it is not there
        if error.errno in (errno.ENOTDIR, errno.ELOOP):
            # Replaced (by a symlink or a file) since it was listed: never followed.
            self._skip_dir(rel, "no longer a directory when the walk reached it; not followed")
            return
        self._skip_dir(rel, f"directory cannot be opened: {error.strerror}")

    def _open_directory(self, rel: str, dir_fd: int, stack: list[str], device: int) -> None:
        st = os.fstat(dir_fd)
        if st.st_dev != device:
            self._skip_dir(rel, "is on another filesystem than the snapshot")
            return
        # The directory's own entry, from its descriptor: the inode listed is
        # the inode read.
        names = xattrs(dir_fd)
        opaque = getxattr(dir_fd, OPAQUE_XATTR, names) == b"y"
        self.emit(
            _entry(
                rel, EntryType.OPAQUE_DIR if opaque else EntryType.DIR,
                mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                capability=getxattr(dir_fd, CAPABILITY, names),
            )
        )  # fmt: skip
        self._directory(rel, dir_fd, stack, device)

    def _directory(self, rel_dir: str, dir_fd: int, stack: list[str], device: int) -> None:
        prefix = f"{rel_dir}/" if rel_dir else ""
        visit = self._visit
        with os.scandir(dir_fd) as it:
            for dirent in it:
                visit(dirent, prefix + dirent.name, dir_fd, stack, device)

    def _visit(
        self, dirent: os.DirEntry[str], rel: str, dir_fd: int, stack: list[str], device: int
    ) -> None:
        """Check and take one listed entry (its path ``rel``); what cannot be read is recorded."""
        limits = self.limits
        if self.count >= limits.max_entries:
            self._stop(f"snapshot has more than {limits.max_entries} entries")
        self.count += 1
        # scandir gives undecodable bytes as surrogates; the manifest is UTF-8
        # only (spec "Paths"). An ASCII path is its own UTF-8.
        if rel.isascii():
            size = len(rel)
        else:
            try:
                size = len(rel.encode("utf-8"))
            except UnicodeEncodeError:
                self._record(rel, "name is not valid UTF-8")
                return
        if size > limits.max_path_bytes:
            limit = limits.max_path_bytes
            self._record(rel, f"path is {size} bytes, limit {limit}", too_large=True)
            return
        try:
            try:
                self._one(dirent, rel, dir_fd, stack, device)
            except EntryChanged:
                # Replaced between stat and open: a live directory does
                # that; once more from a fresh lstat, then it counts.
                self._one(dirent, rel, dir_fd, stack, device, retry=True)
        except EntryChanged:
            self._record(rel, "replaced twice while it was being read")
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: gone since the listing
                self._record(rel, f"cannot be read: {e.strerror}")

    def _one(
        self, dirent: os.DirEntry[str], rel: str, dir_fd: int, stack: list[str], device: int,
        retry: bool = False,
    ) -> None:  # fmt: skip
        name = dirent.name
        # d_type says regular (no syscall): open + fstat costs one syscall
        # less than lstat + open, and the stat is of the very inode read.
        # Anything else, or a race, takes the lstat path.
        if self.open_first and not retry and dirent.is_file(follow_symlinks=False):
            try:
                fd = os.open(name, OPEN_FILE, dir_fd=dir_fd)
            except OSError:
                fd = -1  # gone, or now a symlink (ELOOP): lstat decides
            if fd >= 0:
                try:
                    st = os.fstat(fd)
                    if stat.S_ISREG(st.st_mode) and st.st_dev == device:
                        self.regular_file(rel, name, dir_fd, st, fd)
                        return
                finally:
                    os.close(fd)
        # A retry must not reuse the stat scandir cached.
        st = (
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if retry
            else dirent.stat(follow_symlinks=False)
        )
        if st.st_dev != device:
            self._record(rel, "is on another filesystem than the snapshot")
            if stat.S_ISDIR(st.st_mode):
                self._not_entered(rel)
            return
        if stat.S_ISREG(st.st_mode):
            self.regular_file(rel, name, dir_fd, st, -1)
        elif stat.S_ISDIR(st.st_mode):
            stack.append(rel)  # its entry is emitted when it is opened
        else:
            entry = self._entry(rel, name, dir_fd, st)
            if entry is not None:
                self.emit(entry)

    def emit(self, entry: ManifestEntry) -> None:
        """Take one entry of the walk (a method, not a stored callback: no cycle)."""
        self.entries.append(entry)

    def _entry(self, rel: str, name: str, dir_fd: int, st: os.stat_result) -> ManifestEntry | None:
        """The entry of a symlink, whiteout, device, FIFO or socket (None: recorded)."""
        fmt = stat.S_IFMT(st.st_mode)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        if fmt == stat.S_IFLNK:
            target = os.readlink(name, dir_fd=dir_fd)
            try:
                size = len(target.encode("utf-8"))
            except UnicodeEncodeError:
                self._record(rel, "link target is not valid UTF-8")
                return None
            if size > self.limits.max_path_bytes:
                limit = self.limits.max_path_bytes
                self._record(rel, f"link target is {size} bytes, limit {limit}", too_large=True)
                return None
            return _entry(rel, EntryType.SYMLINK, uid=uid, gid=gid, link=target)
        if fmt == stat.S_IFCHR and st.st_rdev == 0:
            return _entry(rel, EntryType.WHITEOUT)
        path, names = entry_xattrs(dir_fd, name)
        capability = getxattr(path, CAPABILITY, names)
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

    def regular_file(self, rel: str, name: str, dir_fd: int, st: os.stat_result, fd: int) -> None:
        """Hash (or reuse) and emit regular file ``rel``; a linked one waits for its group.

        The entry may be emitted after this returns (the hash is computed on
        the hasher's worker), but always before :meth:`run` returns.
        """
        self._add_size(st.st_size)
        digest = self.reuse_digest(rel, st)
        if digest is not None:
            self._file(rel, st, digest)
            return
        self.hashed += st.st_size
        self.hasher.hash_file(name, dir_fd, fd, st, self._hashed, rel, st)

    def _add_size(self, size: int) -> None:
        self.total_size += size
        if self.total_size > self.limits.max_total_size:
            self._stop(f"snapshot content exceeds {self.limits.max_total_size} bytes")

    def _hashed(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        self.keep_digest(rel, st, digest)
        self._file(rel, st, digest)

    def _file(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        entry = _entry(
            rel,
            EntryType.FILE,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size,
            sha256=digest[:32].hex(),
            capability=digest[32:] or None,
        )
        if st.st_nlink > 1:
            self.inodes.setdefault(st.st_ino, []).append(rel)
            self.linked.append(entry)
        else:
            self.emit(entry)

    def reuse_digest(self, rel: str, st: os.stat_result) -> bytes | None:
        """The previous digest + capability of ``rel`` if its lstat still matches (then kept)."""
        old = self.previous.get(rel)
        if old is not None and old.startswith(file_key(st)):
            # The very value is kept: LayerChecker counts re-hashed bytes by identity.
            self.state[rel] = old
            return old[FILE_KEY.size :]
        return None

    def keep_digest(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        """Remember a freshly hashed ``digest`` + capability of ``rel`` for the next sweep."""
        self.state[rel] = file_key(st) + digest

    def not_walked(self, path: str) -> bool:
        """Whether ``path`` lies in a part of the tree this walk did not look at."""
        if self.truncated or self.skips_lost:
            return True
        return any(path == d or path.startswith(d + "/") for d in self.skipped_dirs)

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
    walk.strict = True
    run_walk(walk)
    if walk.unscannable:
        first = walk.unscannable[0]
        where = walk.root if first.path is None else repr(first.path)
        raise (TooLarge if first.too_large else InvalidInput)(f"{where}: {first.reason}")
    return FileManifest.from_entries(walk.entries), walk.state


def run_walk(walk: SnapshotWalk) -> None:
    """Walk the whole snapshot, then emit the held-back hardlink groups.

    What cannot be read is in ``walk.unscannable``; only a failure of the walk
    itself is raised.

    Raises:
        InvalidInput: the snapshot cannot be read at all.
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
