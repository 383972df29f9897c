# SPDX-License-Identifier: Apache-2.0
"""The snapshot walk's reads of one entry: xattrs and file content, all by descriptor.

Every read names its entry by an open descriptor (the file's, or its
directory's plus the entry's name), never by a path from the root, so a
directory renamed and replaced by a symlink during the walk cannot redirect
a read outside the snapshot.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

__all__ = [
    "CAPABILITY",
    "OPAQUE_XATTR",
    "EntryChanged",
    "Hasher",
    "entry_xattrs",
    "fcapability",
    "getxattr",
    "xattrs",
]

OPAQUE_XATTR = "trusted.overlay.opaque"
CAPABILITY = "security.capability"
_NO_XATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
#: Read size of the file hashing loop (one buffer per walk, reused for every file).
_BUFFER = 256 * 1024
# O_NOFOLLOW: the name was a regular file at lstat time; never let a swap for
# a symlink make us read something outside the snapshot. O_NONBLOCK: nor a
# swap for a FIFO block the walk forever.
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class EntryChanged(Exception):
    """The entry is no longer the one stat'ed (replaced between stat and open)."""


def xattrs(fd: int) -> list[str]:
    """Names of the extended attributes of an open file or directory."""
    try:
        return os.listxattr(fd)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return []
        raise


def getxattr(target: int | bytes, name: str, names: list[str]) -> bytes | None:
    """The value of ``name`` (when listed in ``names``) of a descriptor or a no-follow path."""
    if name not in names:
        return None
    try:
        if isinstance(target, int):
            return os.getxattr(target, name) or None
        return os.getxattr(target, name, follow_symlinks=False) or None
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


def entry_xattrs(dir_fd: int, name: str) -> tuple[bytes, list[str]]:
    """A no-follow path to ``name`` in ``dir_fd``, and its xattr names.

    For a device, FIFO or socket: opening one can block or act on a device,
    and ``listxattr`` takes no ``dir_fd``. ``/proc/self/fd/N`` is the
    directory itself (the kernel does not look its path up again), so the
    lookup of ``name`` stays inside the directory the walk holds open.

    Raises:
        OSError: the entry or ``/proc`` cannot be read.
    """
    path = b"/proc/self/fd/%d/" % dir_fd + os.fsencode(name)
    try:
        return path, os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return path, []
        raise


def fcapability(fd: int) -> bytes | None:
    """The ``security.capability`` xattr of an open file, if any."""
    # listxattr first: a file without xattrs (nearly all) costs one syscall
    # and no exception; getxattr's ENODATA OSError costs four times as much,
    # which a full re-hash of many small files notices.
    try:
        if CAPABILITY not in os.listxattr(fd):
            return None
        return os.getxattr(fd, CAPABILITY) or None
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


class Hasher:
    """Hashes files through one reused buffer.

    ``hashlib.file_digest`` allocates (and the kernel zeroes) a 256 KiB buffer
    per file, and ``open()`` builds two objects; for a layer of small files
    that per-file cost is most of the gap to raw sha256.
    """

    def __init__(self) -> None:
        self.buffer = bytearray(_BUFFER)
        self.buffers = [self.buffer]
        self.view = memoryview(self.buffer)

    def digest(self, name: str, dir_fd: int, fd: int, st: os.stat_result) -> bytes:
        """Raw sha256 of the file ``name`` in ``dir_fd`` followed by its capability, if any.

        ``fd`` is the file already open and fstat'ed as ``st`` (the caller
        closes it), or -1: then it is opened here and must still be the inode
        ``st`` describes. The caller keeps ``st``: a write or a swap after it
        moves ctime or the inode number, so the next sweep hashes again.

        Raises:
            EntryChanged: ``name`` is no longer the regular file ``st`` describes.
            OSError: it cannot be opened or read.
        """
        own = fd < 0
        if own:
            fd = os.open(name, OPEN_FILE, dir_fd=dir_fd)
        try:
            if own:
                now = os.fstat(fd)
                if not stat.S_ISREG(now.st_mode) or (now.st_ino, now.st_dev) != (
                    st.st_ino,
                    st.st_dev,
                ):
                    raise EntryChanged(name)
            capability = fcapability(fd)
            h = hashlib.sha256()
            view, buffers, readv, full = self.view, self.buffers, os.readv, _BUFFER
            done, size = 0, st.st_size
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
