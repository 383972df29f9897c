# SPDX-License-Identifier: Apache-2.0
"""Open a snapshot's directories by descriptor, one component at a time, from its root.

A walk that opens ``root/a/b`` by path resolves ``a`` again: if ``a`` was
renamed away and replaced by a symlink after it was listed, the kernel
follows that symlink and the walk reads a tree outside the snapshot. Here
every component is opened relative to its parent's descriptor with
``O_DIRECTORY|O_NOFOLLOW``, so a symlink anywhere on the way is refused
(``ENOTDIR``/``ELOOP``) and never followed.

The descriptors of the current chain of directories are kept (up to
:data:`CACHED_DEPTH` levels): a depth-first walk opens each directory once,
not once per ancestor. Deeper levels are opened one after another and only
the last stays open, so a deep tree cannot exhaust the process's descriptors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["CACHED_DEPTH", "DirChain", "open_dir_at", "open_root"]

#: Flags of every directory open: never through a symlink, never inherited.
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Levels of the current chain kept open (descriptors used at most: this + 2).
CACHED_DEPTH = 64


def open_root(path: str | os.PathLike[str]) -> int:
    """Open a snapshot root directory (the caller closes it).

    The root's own path comes from containerd and is trusted; only its last
    component is opened without following a symlink.

    Raises:
        OSError: it is missing, a symlink, not a directory, or unreadable.
    """
    return os.open(path, OPEN_DIR)


def open_dir_at(dir_fd: int, name: str) -> int:
    """Open the directory ``name`` inside ``dir_fd`` without following a symlink.

    Args:
        dir_fd: an open directory.
        name: one path component (no ``/``, not ``.`` or ``..``).

    Returns:
        The new descriptor (the caller closes it).

    Raises:
        OSError: ``name`` is missing, a symlink (``ENOTDIR``/``ELOOP``), not a
            directory, or unreadable.
        ValueError: ``name`` is not a single component.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single path component: {name!r}")
    return os.open(name, OPEN_DIR, dir_fd=dir_fd)


class DirChain:
    """Descriptors of the directories from a root down to the one last opened.

    Args:
        root_fd: the root directory's descriptor (borrowed: not closed here).
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._names: list[str] = []
        self._fds: list[int] = []

    def open(self, parts: Sequence[str]) -> tuple[int, bool]:
        """The descriptor of the directory at ``parts`` below the root.

        Returns:
            The descriptor and whether the caller owns it (closes it): a
            directory deeper than :data:`CACHED_DEPTH` is not kept in the chain.

        Raises:
            OSError: as :func:`open_dir_at`, for any component.
            ValueError: as :func:`open_dir_at`.
        """
        cached = parts[:CACHED_DEPTH]
        keep = 0
        while keep < len(self._names) and keep < len(cached) and self._names[keep] == cached[keep]:
            keep += 1
        self._drop(keep)
        for name in cached[keep:]:
            fd = open_dir_at(self._fds[-1] if self._fds else self.root_fd, name)
            self._names.append(name)
            self._fds.append(fd)
        fd, owned = (self._fds[-1] if self._fds else self.root_fd), False
        for name in parts[CACHED_DEPTH:]:
            try:
                deeper = open_dir_at(fd, name)
            finally:
                if owned:
                    os.close(fd)
            fd, owned = deeper, True
        return fd, owned

    def _drop(self, keep: int) -> None:
        while len(self._fds) > keep:
            os.close(self._fds.pop())
            self._names.pop()

    def close(self) -> None:
        """Close every descriptor of the chain (not the root's)."""
        self._drop(0)
