# SPDX-License-Identifier: Apache-2.0
"""The change key every re-hashing walk compares (attestor.manifest.file_key)."""

from __future__ import annotations

import os
from pathlib import Path

from attestor.manifest import FILE_KEY, file_key, scan_snapshot


def test_the_key_is_the_inode_size_and_both_times(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    st = os.lstat(path)
    assert FILE_KEY.unpack(file_key(st)) == (st.st_ino, 3, st.st_mtime_ns, st.st_ctime_ns)
    assert file_key(os.lstat(path)) == file_key(st)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert file_key(os.lstat(path)) != file_key(st)


def test_the_snapshot_state_starts_with_the_key(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"one")
    _manifest, state = scan_snapshot(tmp_path)
    assert state["f"].startswith(file_key(os.lstat(tmp_path / "f")))
