# SPDX-License-Identifier: Apache-2.0
"""The sweep's per-directory names: the incremental hot loop answers as the full walk does."""

from __future__ import annotations

import os
import time
from pathlib import Path

from attestor.manifest import (
    AttestedManifest,
    LayerState,
    ManifestLimits,
    compare_manifests,
    compare_snapshot,
    manifest_from_snapshot,
)
from attestor.manifest._sweep import _unpack_names


def _tree(root: Path) -> Path:
    for d in ("bin", "etc", "usr/lib"):
        (root / d).mkdir(parents=True)
    for i in range(12):
        (root / "etc" / f"f{i}").write_bytes(bytes([i]) * (100 + i))
        (root / "usr/lib" / f"lib{i}.so").write_bytes(os.urandom(300))
    (root / "bin/sh").write_bytes(b"#!" * 40)
    (root / "bin/éé").write_bytes(b"not ascii")
    return root


def _swept(root: Path) -> tuple[AttestedManifest, LayerState]:
    attested = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    first = compare_snapshot(root, attested)
    second = compare_snapshot(root, attested, first.state)  # the hot loop runs
    assert not second.full and second.hashed == 0 and second.changes == ()
    return attested, second.state


def _agrees(root: Path, attested: AttestedManifest, state: LayerState) -> None:
    result = compare_snapshot(root, attested, state)
    expected = compare_manifests(attested.to_manifest(), manifest_from_snapshot(root))
    assert result.changes == tuple(expected)
    assert result.changes == compare_snapshot(root, attested).changes


def test_kept_names_are_what_the_manifest_says(tmp_path: Path) -> None:
    attested, state = _swept(_tree(tmp_path / "fs"))
    kept = {
        prefix + name: index
        for prefix, packed in state.names.items()
        for name, index in _unpack_names(packed).items()
    }
    assert kept == {p: attested.index(p) for p in kept}
    # Every single-link regular file, the non-ASCII one too.
    assert sorted(kept) == sorted(e.path for e in attested.entries() if str(e.type) == "file")


def test_names_swapped_in_a_directory_are_compared_by_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested, state = _swept(root)
    time.sleep(0.02)  # past the kernel's ctime tick
    os.rename(root / "etc/f1", root / "etc/tmp")
    os.rename(root / "etc/f2", root / "etc/f1")
    os.rename(root / "etc/tmp", root / "etc/f2")
    _agrees(root, attested, state)


def test_a_name_now_of_another_type_leaves_the_hot_loop(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested, state = _swept(root)
    (root / "etc/f3").unlink()
    (root / "etc/f3").mkdir()
    (root / "etc/f4").unlink()
    os.symlink("f5", root / "etc/f4")
    (root / "etc/f6").unlink()
    os.mkfifo(root / "etc/f6")
    os.link(root / "etc/f7", root / "etc/f7-link")  # f7 now has two links
    _agrees(root, attested, state)


def test_a_write_that_restores_size_and_mtime_is_caught_by_ctime(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested, state = _swept(root)
    target = root / "usr/lib/lib5.so"
    before = target.stat()
    time.sleep(0.02)  # past the kernel's ctime tick
    target.write_bytes(os.urandom(before.st_size))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = compare_snapshot(root, attested, state)
    assert [(c.path, c.kind) for c in result.changes] == [("usr/lib/lib5.so", "content")]
    assert result.hashed == before.st_size


def test_limits_lowered_with_the_same_state_are_applied(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested, state = _swept(root)
    for limits in (
        ManifestLimits(max_path_bytes=len("usr/lib/lib1.so") - 1),
        ManifestLimits(max_path_bytes=len("bin/éé".encode()) - 1),
        ManifestLimits(max_total_size=1000),
        ManifestLimits(max_entries=10),
    ):
        kept = compare_snapshot(root, attested, state, limits=limits)
        fresh = compare_snapshot(root, attested, limits=limits)
        assert kept.unscannable == fresh.unscannable, limits
        assert kept.unscannable, limits
        assert kept.changes == fresh.changes, limits
