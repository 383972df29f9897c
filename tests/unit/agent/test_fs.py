# SPDX-License-Identifier: Apache-2.0
"""agent._fs: atomic, durable replacement of small state files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent._fs import TMP_SUFFIX, fsync_dir, write_atomic, write_synced


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, b"x" * 1_000_000)
    assert target.read_bytes() == b"x" * 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_atomic_failure_keeps_the_old_bytes(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    (tmp_path / ("state.json" + TMP_SUFFIX)).mkdir()  # the temp name is taken: open fails
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"


def test_write_synced_truncates_and_honours_mode(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    write_synced(path, b"longer content")
    write_synced(path, b"short", mode=0o644)  # mode only applies when creating
    assert path.read_bytes() == b"short"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_fsync_dir_needs_a_directory(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsync_dir(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "missing")
