# SPDX-License-Identifier: Apache-2.0
"""compare_snapshot: the agent's sweep gives compare_manifests' answer, and its state."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from attestor.manifest import (
    AttestedManifest,
    EntryType,
    ManifestEntry,
    compare_manifests,
    compare_snapshot,
    manifest_from_snapshot,
    pack_entry,
)
from attestor.manifest._compact import file_digest_of, pack_file
from tests.harness.binaries import require_root

CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "bin/a").write_bytes(b"a" * 3000)
    (root / "bin/b").write_bytes(b"b" * 10)
    os.link(root / "bin/a", root / "bin/a2")
    (root / "etc/conf").write_bytes(b"conf")
    os.symlink("a", root / "bin/l")
    return root


@pytest.mark.parametrize("capability", [b"", CAP])
def test_pack_file_is_pack_entry_of_a_file(capability: bytes) -> None:
    digest = bytes(range(32))
    entry = ManifestEntry(
        "x/y", EntryType.FILE, mode=0o4755, uid=7, gid=8, size=12345, sha256=digest.hex(),
        capability=capability or None,
    )  # fmt: skip
    record = pack_file(0o4755, 7, 8, 12345, digest, capability)
    assert record == pack_entry(entry)
    assert file_digest_of(record) == digest + capability


def test_state_skips_unchanged_files_and_rehashes_what_moved(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    (root / "new").write_bytes(b"unlisted")  # kept by path, not by index
    first = compare_snapshot(root, attested)
    assert first.full and first.hashed == 3000 + 3000 + 10 + 4 + 8
    assert [(c.path, c.kind) for c in first.changes] == [("new", "added")]
    assert first.files == first.state.files() == 5
    again = compare_snapshot(root, attested, first.state)
    assert not again.full and again.hashed == 0 and again.changes == first.changes
    # chmod moves ctime (and the mode is in the key): only that file is re-read.
    os.chmod(root / "bin/b", 0o700)
    third = compare_snapshot(root, attested, again.state)
    assert third.hashed == 10
    assert [(c.path, c.kind) for c in third.changes] == [("bin/b", "mode"), ("new", "added")]
    # A file that differs keeps its own digest: the next sweep reports it again unread.
    fourth = compare_snapshot(root, attested, third.state)
    assert fourth.hashed == 0 and fourth.changes == third.changes


def test_state_made_against_another_manifest_is_not_used(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    one = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    first = compare_snapshot(root, one)
    (root / "etc/more").write_bytes(b"m")
    two = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    other = compare_snapshot(root, two, first.state)
    assert other.full and other.hashed == 3000 * 2 + 10 + 4 + 1 and other.changes == ()
    # The same manifest parsed again (another object, same digest) keeps the state.
    again = AttestedManifest.from_canonical_bytes(manifest_from_snapshot(root).canonical_bytes())
    assert compare_snapshot(root, again, other.state).hashed == 0


def test_kept_digest_is_trusted_while_the_key_holds(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    state = compare_snapshot(root, attested).state
    index = attested.index("etc/conf")
    assert index is not None
    # What the periodic full re-hash is for: a state that lies is believed
    # until the file's lstat key moves.
    state.flags[index] = 2
    state.other[index] = b"\0" * 32
    lied = compare_snapshot(root, attested, state)
    assert [(c.path, c.kind) for c in lied.changes] == [("etc/conf", "content")]
    assert compare_snapshot(root, attested).changes == ()


def _mutate(root: Path, rng: random.Random, step: int) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    target = rng.choice(files) if files else None
    action = rng.randrange(7)
    # Each change moves the lstat key by more than ctime, whose kernel clock
    # ticks coarsely: two writes within a tick keep the same ctime.
    if action == 0 and target is not None:
        target.write_bytes(os.urandom(target.stat().st_size + rng.randrange(1, 300)))
    elif action == 1 and target is not None:
        now = target.stat().st_mode & 0o7777
        os.chmod(target, rng.choice([m for m in (0o600, 0o644, 0o755, 0o4755) if m != now]))
    elif action == 2 and target is not None:
        target.unlink()
    elif action == 3 and target is not None:
        os.link(target, target.parent / f"hl{step}")
    elif action == 4:
        (root / rng.choice(["bin", "etc"]) / f"n{step}").write_bytes(b"n" * rng.randrange(50))
    elif action == 5 and target is not None:
        os.chown(target, rng.randrange(3), rng.randrange(3))
    else:
        link = root / "bin/l"
        link.unlink(missing_ok=True)
        os.symlink(f"t{step}", link)


def test_incremental_sweeps_agree_with_compare_manifests(tmp_path: Path) -> None:
    require_root("chown")
    root = _tree(tmp_path / "fs")
    for i in range(20):
        (root / "etc" / f"f{i}").write_bytes(bytes([i]) * (i * 37))
    attested = AttestedManifest.from_manifest(manifest_from_snapshot(root))
    expected_full = attested.to_manifest()
    rng = random.Random(5)  # noqa: S311 - a reproducible test sequence
    result = compare_snapshot(root, attested)
    for step in range(60):
        _mutate(root, rng, step)
        result = compare_snapshot(root, attested, result.state)
        observed = manifest_from_snapshot(root)
        assert result.changes == tuple(compare_manifests(expected_full, observed)), step
        assert result.files == sum(1 for e in observed.entries if e.sha256 is not None)
        assert compare_snapshot(root, attested).changes == result.changes
