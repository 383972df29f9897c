# SPDX-License-Identifier: Apache-2.0
"""Hashing on a worker thread gives the digests, entries and changes of hashing inline."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from attestor.manifest import (
    AttestedManifest,
    ManifestLimits,
    SnapshotWalk,
    compare_snapshot,
    manifest_from_snapshot,
    run_walk,
)
from attestor.manifest._hashpipe import MAX_PENDING, HashPipe
from attestor.manifest._walk_io import PIPE_MAX, PIPE_MIN, Hasher

# Around both ends of the piped range, and what hashlib does with the GIL.
SIZES = [0, 1, 2047, PIPE_MIN - 1, PIPE_MIN, 20_000, PIPE_MAX, PIPE_MAX + 1, 3 * PIPE_MAX + 7]


def _files(root: Path) -> dict[str, bytes]:
    root.mkdir(parents=True)
    out = {}
    for n, size in enumerate(SIZES):
        data = os.urandom(size)
        (root / f"f{n}").write_bytes(data)
        out[f"f{n}"] = data
    return out


def _piped_walk(root: Path, *, limits: ManifestLimits | None = None) -> SnapshotWalk:
    walk = SnapshotWalk(root, None, limits or ManifestLimits(), open_first=True)
    walk.hasher = Hasher(HashPipe())  # whatever the host's cores
    run_walk(walk)
    return walk


def test_piped_walk_gives_the_inline_digests(tmp_path: Path) -> None:
    files = _files(tmp_path / "fs")
    walk = _piped_walk(tmp_path / "fs")
    got = {e.path: (e.sha256, e.size) for e in walk.entries}
    assert got == {p: (hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items()}
    assert walk.hashed == sum(SIZES)
    assert manifest_from_snapshot(tmp_path / "fs").entries == tuple(
        sorted(walk.entries, key=lambda e: e.path)
    )


@pytest.mark.parametrize("delta", [-5000, -1, 1, 5000, PIPE_MAX])
def test_a_file_that_changed_size_since_its_stat_is_hashed_to_its_end(
    tmp_path: Path, delta: int
) -> None:
    (tmp_path / "f").write_bytes(b"x" * 20_000)
    st = os.lstat(tmp_path / "f")
    data = os.urandom(20_000 + delta)
    (tmp_path / "f").write_bytes(data)  # same inode, other size than ``st`` says
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pipe = HashPipe()
        out: list[bytes] = []
        Hasher(pipe).hash_file("f", dir_fd, -1, st, out.append)
        pipe.drain()
        pipe.close()
    finally:
        os.close(dir_fd)
    assert out == [hashlib.sha256(data).digest()]


def test_a_failed_hash_is_raised_not_dropped() -> None:
    pipe = HashPipe()
    pipe.submit([1, 2], b"", lambda digest: None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="sha256 worker failed") as info:
        pipe.drain()
    assert isinstance(info.value.__cause__, TypeError)
    pipe.close()


def test_bytes_waiting_for_the_worker_are_bounded() -> None:
    pipe = HashPipe()
    done: list[bytes] = []
    chunk = os.urandom(PIPE_MAX)
    for _ in range(12):
        pipe.submit(chunk, b"", done.append)
        assert pipe._pending <= MAX_PENDING
    pipe.drain()
    pipe.close()
    assert done == [hashlib.sha256(chunk).digest()] * 12


def test_files_read_before_a_cap_stops_the_walk_are_still_compared(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    root.mkdir()
    for name in ("a", "b"):
        (root / name).write_bytes(b"1" * 20_000)
    attested = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    for name in ("a", "b"):
        (root / name).write_bytes(b"2" * 20_000)  # both tampered, same size
    check = compare_snapshot(root, attested, limits=ManifestLimits(max_total_size=30_000))
    # One file fits under the cap; its change is reported with the cap record.
    assert [c.kind for c in check.changes] == ["content"]
    assert [u.too_large for u in check.unscannable] == [True]


def test_no_worker_thread_outlives_a_walk(tmp_path: Path) -> None:
    _files(tmp_path / "fs")
    before = threading.active_count()
    _piped_walk(tmp_path / "fs")
    _piped_walk(tmp_path / "fs", limits=ManifestLimits(max_total_size=PIPE_MAX))  # stopped early
    assert threading.active_count() == before
