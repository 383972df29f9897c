# SPDX-License-Identifier: Apache-2.0
"""The one "has this file changed since the last walk" key.

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

__all__ = ["FILE_KEY", "file_key"]

#: The packed key: ino, size, mtime_ns, ctime_ns (32 bytes). Kept states
#: append their own fields after it (``FILE_KEY.format + "32s"`` for a digest).
FILE_KEY = struct.Struct("<QQqq")
_pack = FILE_KEY.pack


def file_key(st: os.stat_result) -> bytes:
    """The packed change key of an lstat result (:data:`FILE_KEY`)."""
    return _pack(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
