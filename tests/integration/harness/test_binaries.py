# SPDX-License-Identifier: Apache-2.0
"""A missing binary or asset skips on a developer machine and fails under CI=true."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.binaries import require

MISSING = "attestor-no-such-binary"


def test_require_finds_sbin_and_postgres_binaries() -> None:
    for name in ("runc", "initdb", "pg_ctl"):
        path = require(name)
        assert os.path.isabs(path)
        assert os.access(path, os.X_OK)


def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require(MISSING)


def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require(MISSING)


def test_asset_reads_only_tests_assets_and_fails_under_ci_when_missing(
    asset: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no/such/asset"):
        asset("no/such/asset")
    # A file beside the checkout (../shared/FACTS.md) is not an asset: a
    # plain clone has no such neighbour.
    with pytest.raises(pytest.fail.Exception, match="FACTS.md"):
        asset("FACTS.md")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no/such/asset"):
        asset("no/such/asset")
    readme = asset("README.md")
    assert readme == Path(__file__).resolve().parents[2] / "assets" / "README.md"
    assert readme.read_text().startswith("# tests/assets")
