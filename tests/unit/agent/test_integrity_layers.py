# SPDX-License-Identifier: Apache-2.0
"""Incremental layer checks, periodic full re-hash, and the hashing budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.integrity.budget import Budget, BudgetConfig
from agent.integrity.layers import LayerChecker
from attestor.errors import ConfigError
from attestor.manifest import manifest_from_snapshot


def tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/a").write_bytes(b"a" * 1000)
    (root / "etc/b").write_bytes(b"b" * 500)
    os.symlink("a", root / "etc/l")
    return root


def test_unchanged_tree_is_not_rehashed_until_a_full_sweep_is_due(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    checker = LayerChecker(full_rehash_every=3)
    runs = [checker.check(root, attested) for _ in range(4)]
    assert [r.full_rehash for r in runs] == [True, False, False, True]
    assert [r.bytes_hashed for r in runs] == [1500, 0, 0, 1500]
    assert all(r.changes == () and r.files_checked == 2 for r in runs)


def test_each_kind_of_tampering(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    checker = LayerChecker()
    checker.check(root, attested)
    (root / "etc/a").write_bytes(b"A" * 1000)
    os.chmod(root / "etc/b", 0o4755)  # noqa: S103 - tampering under test
    os.unlink(root / "etc/l")
    os.symlink("b", root / "etc/l")
    (root / "etc/new").write_bytes(b"")
    result = checker.check(root, attested)
    assert [(c.path, c.kind) for c in result.changes] == [
        ("etc/a", "content"),
        ("etc/b", "mode"),
        ("etc/l", "link"),
        ("etc/new", "added"),
    ]
    assert result.bytes_hashed == 1000 + 500 + 0  # only what moved


def test_unreadable_directory_is_unscannable_not_an_exception(tmp_path: Path) -> None:
    attested = manifest_from_snapshot(tree(tmp_path / "fs"))
    result = LayerChecker().check(tmp_path / "missing", attested)
    # Not a silent error: the whole layer is a finding of its own, and no
    # attested path is claimed "removed" from a tree that was never read.
    assert result.changes == ()
    assert [(u.path, u.reason) for u in result.unscannable] == [
        (None, "snapshot root cannot be opened: No such file or directory")
    ]


def test_forget_drops_state(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    checker = LayerChecker(full_rehash_every=100)
    checker.check(root, attested)
    assert checker.tracked() == {root}
    checker.forget(root)
    assert checker.check(root, attested).full_rehash is True  # full again


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_budget_sleeps_off_debt_beyond_the_burst() -> None:
    t = FakeTime()
    budget = Budget(BudgetConfig(bytes_per_second=1000, burst_bytes=1000), t.clock, t.sleep)
    assert budget.spend(1000) == 0  # the burst
    assert budget.spend(500) == pytest.approx(0.5)
    t.now += 2.0  # idle time refills the bucket (up to the burst)
    assert budget.spend(1000) == 0
    assert budget.spend(2000) == pytest.approx(2.0)
    assert budget.slept == pytest.approx(2.5)


def test_unlimited_budget_never_sleeps_but_honours_the_pause() -> None:
    t = FakeTime()
    assert Budget(BudgetConfig(), t.clock, t.sleep).spend(10**12) == 0
    paused = Budget(BudgetConfig(pause_between_layers=0.01), t.clock, t.sleep)
    assert paused.spend(0) == pytest.approx(0.01)


def test_budget_and_checker_configs_are_checked() -> None:
    with pytest.raises(ConfigError):
        BudgetConfig(bytes_per_second=0)
    with pytest.raises(ConfigError):
        LayerChecker(full_rehash_every=0)


def test_checker_charges_the_budget_with_bytes_hashed(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs")
    t = FakeTime()
    budget = Budget(BudgetConfig(bytes_per_second=100, burst_bytes=0), t.clock, t.sleep)
    LayerChecker(budget=budget).check(root, manifest_from_snapshot(root))
    assert t.sleeps == [pytest.approx(15.0)]
