# SPDX-License-Identifier: Apache-2.0
"""The snapshot walk reads only through descriptors reached from the root.

A directory renamed away and replaced by a symlink while the walk is inside
the tree must not take the walk outside the snapshot; a file replaced by a
FIFO must not block it. Real directories, real renames; the only hook is a
subclass of the walk that does the rename at a chosen point.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from attestor.errors import InvalidInput
from attestor.manifest import (
    ManifestEntry,
    ManifestLimits,
    SnapshotWalk,
    manifest_from_snapshot,
    run_walk,
)
from attestor.manifest._dirfd import CACHED_DEPTH, DirChain, open_dir_at
from attestor.manifest._walk_io import EntryChanged, Hasher


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "secret").write_bytes(b"host secret\n")
    return outside


def test_open_dir_at_refuses_a_symlink_to_a_directory(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "fs"
    root.mkdir()
    (root / "a").symlink_to(outside)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as raised:
            open_dir_at(root_fd, "a")
        assert raised.value.errno in (errno.ENOTDIR, errno.ELOOP)
        with pytest.raises(ValueError):
            open_dir_at(root_fd, "a/b")  # one component only: no path lookup
        chain = DirChain(root_fd)
        with pytest.raises(OSError):
            chain.open(["a", "b"])
        chain.close()
    finally:
        os.close(root_fd)


def test_dir_chain_reaches_deep_trees_with_bounded_descriptors(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    parts = [f"d{i}" for i in range(CACHED_DEPTH + 20)]
    deep = root.joinpath(*parts)
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(b"x")
    outside = _outside(tmp_path)
    (deep / "escape").symlink_to(outside)
    before = len(os.listdir("/proc/self/fd"))
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    chain = DirChain(root_fd)
    try:
        fd, owned = chain.open(parts)
        assert owned  # deeper than the cache: the caller closes it
        assert sorted(os.listdir(fd)) == ["escape", "leaf"]
        assert os.fstat(fd).st_ino == os.stat(deep).st_ino
        os.close(fd)
        assert len(os.listdir("/proc/self/fd")) - before <= CACHED_DEPTH + 2
        with pytest.raises(OSError):
            chain.open([*parts, "escape", "b"])
    finally:
        chain.close()
        os.close(root_fd)
    assert len(os.listdir("/proc/self/fd")) == before


class _SwapWalk(SnapshotWalk):
    """Renames ``a`` away and puts a symlink to ``outside`` in its place as soon
    as the walk has listed ``a`` (it emits ``a/f`` while listing ``a``, before
    it descends into ``a/b``)."""

    def __init__(self, root: Path, outside: Path) -> None:
        super().__init__(root, None, ManifestLimits(), open_first=True)
        self.outside = outside
        self.swapped = False

    def emit(self, entry: ManifestEntry) -> None:
        super().emit(entry)
        if entry.path == "a/f" and not self.swapped:
            root = Path(self.root)
            (root / "a").rename(root / "a.moved")
            (root / "a").symlink_to(self.outside)
            self.swapped = True


def test_a_directory_swapped_for_a_symlink_mid_walk_is_never_followed(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "fs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"f")
    (root / "a" / "b" / "inside.txt").write_bytes(b"in the snapshot\n")
    walk = _SwapWalk(root, outside)
    run_walk(walk)
    assert walk.swapped
    paths = {e.path for e in walk.entries}
    # Nothing from outside the snapshot was read or reported.
    assert "a/b/secret" not in paths
    assert all(e.sha256 != _sha256(b"host secret\n") for e in walk.entries)
    # What was read of a/b is the directory that was listed (still in the
    # snapshot, now as a.moved/b), or it is reported as not checked.
    assert "a/b/inside.txt" in paths or any(u.path == "a/b" for u in walk.unscannable)


def test_a_symlink_where_a_directory_is_expected_is_a_symlink_entry(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "fs"
    root.mkdir()
    (root / "a").symlink_to(outside)
    walk = SnapshotWalk(root, None, ManifestLimits(), open_first=True)
    run_walk(walk)
    assert [(e.path, str(e.type), e.link) for e in walk.entries] == [("a", "symlink", str(outside))]
    assert walk.unscannable == []


def test_a_file_swapped_for_a_fifo_is_refused_not_blocking(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    (root / "f").write_bytes(b"regular")
    st = os.lstat(root / "f")
    (root / "f").unlink()
    os.mkfifo(root / "f")
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    outcome: list[object] = []

    def digest() -> None:
        try:
            outcome.append(Hasher().digest("f", dir_fd, -1, st))
        except EntryChanged as e:
            outcome.append(e)

    worker = threading.Thread(target=digest, daemon=True)
    worker.start()
    worker.join(timeout=5)
    os.close(dir_fd)
    assert not worker.is_alive(), "hashing blocked on a FIFO"
    assert len(outcome) == 1 and isinstance(outcome[0], EntryChanged)


def test_a_walk_that_cannot_start_raises_for_scan_snapshot_only(tmp_path: Path) -> None:
    walk = SnapshotWalk(tmp_path / "missing", None, ManifestLimits(), open_first=True)
    run_walk(walk)  # recorded, not raised
    assert walk.truncated and [u.path for u in walk.unscannable] == [None]
    with pytest.raises(InvalidInput):
        manifest_from_snapshot(tmp_path / "missing")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
