# SPDX-License-Identifier: Apache-2.0
"""The one "has this file changed since the last walk" key, and the walk's per-file state.

A walk that re-hashes only changed files compares each regular file's lstat
with what the previous walk saw. The key is (inode, size, mtime_ns,
ctime_ns): a write, chmod, chown or xattr change moves ctime, which only the
kernel sets, so an equal key lets the walk reuse the file's digest. A forged
ctime is what the periodic full re-hash is for. The snapshot walk, the
agent's layer sweep and its drift check all use this key.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

__all__ = ["FILE_KEY", "FileState", "SnapshotState", "file_key"]

#: The packed key: ino, size, mtime_ns, ctime_ns (32 bytes). Kept states
#: append their own fields after it (``FILE_KEY.format + "32s"`` for a digest).
FILE_KEY = struct.Struct("<QQqq")
_pack = FILE_KEY.pack


def file_key(st: os.stat_result) -> bytes:
    """The packed change key of an lstat result (:data:`FILE_KEY`)."""
    return _pack(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# The change key (ino, size, mtime_ns, ctime_ns), then the raw sha256; the
# capability xattr follows.
_PACK = struct.Struct(FILE_KEY.format + "32s")


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
