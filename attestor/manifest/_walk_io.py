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
from collections.abc import Callable
from functools import partial

from attestor.manifest._hashpipe import HashPipe

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
#: Sizes of the files a :class:`HashPipe` hashes. Below the minimum the
#: hand-over costs more than the hash (and hashlib keeps the GIL under 2 KiB);
#: above the maximum the file is read and hashed in pieces, which the reused
#: buffer does at the speed of hashlib alone.
PIPE_MIN = 8 * 1024
PIPE_MAX = 1024 * 1024
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
    """Hashes files through one reused buffer, or on a worker thread (:class:`HashPipe`).

    ``hashlib.file_digest`` allocates (and the kernel zeroes) a 256 KiB buffer
    per file, and ``open()`` builds two objects; for a layer of small files
    that per-file cost is most of the gap to raw sha256.

    Args:
        pipe: hash files of :data:`PIPE_MIN` to :data:`PIPE_MAX` bytes on a
            worker thread; None hashes everything inline.
    """

    def __init__(self, pipe: HashPipe | None = None) -> None:
        self.buffer = bytearray(_BUFFER)
        self.buffers = [self.buffer]
        self.view = memoryview(self.buffer)
        self.pipe = pipe

    def digest(self, name: str, dir_fd: int, fd: int, st: os.stat_result) -> bytes:
        """Raw sha256 of the file ``name`` in ``dir_fd`` followed by its capability, if any.

        :meth:`hash_file`, waiting for the result.

        Raises:
            EntryChanged: ``name`` is no longer the regular file ``st`` describes.
            OSError: it cannot be opened or read.
            RuntimeError: the pipe's worker failed.
        """
        out: list[bytes] = []
        self.hash_file(name, dir_fd, fd, st, out.append)
        self.finish()
        return out[0]

    def hash_file(
        self,
        name: str,
        dir_fd: int,
        fd: int,
        st: os.stat_result,
        then: Callable[..., None],
        *args: object,
    ) -> None:
        """Read file ``name`` in ``dir_fd``; ``then(*args, digest)`` gets sha256 + capability.

        ``fd`` is the file already open and fstat'ed as ``st`` (the caller
        closes it), or -1: then it is opened here and must still be the inode
        ``st`` describes. The caller keeps ``st``: a write or a swap after it
        moves ctime or the inode number, so the next sweep hashes again.

        Every read happens before this returns; only the hashing of what was
        read may happen later, on the pipe's worker, and then ``then`` runs
        when the pipe applies its results (:meth:`HashPipe.drain`).

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
            capability = fcapability(fd) or b""
            size = st.st_size
            h = hashlib.sha256()
            done = 0
            if self.pipe is not None and PIPE_MIN <= size <= PIPE_MAX:
                # One read of one byte more than the stat's size: a short read
                # that ends at that size is the whole file (as in the loop below).
                data = os.read(fd, size + 1)
                if len(data) == size:
                    self.pipe.submit(data, capability, partial(then, *args) if args else then)
                    return
                h.update(data)  # it changed size meanwhile: read the rest here
                done = len(data)
            view, buffers, readv, full = self.view, self.buffers, os.readv, _BUFFER
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
        then(*args, h.digest() + capability)

    def finish(self) -> None:
        """Apply every pending result (each file's ``then``); call before reading them.

        Raises:
            RuntimeError: the pipe's worker failed.
        """
        if self.pipe is not None:
            self.pipe.drain()

    def close(self) -> None:
        """Stop the pipe's worker, if any (pending results are dropped)."""
        if self.pipe is not None:
            self.pipe.close()
