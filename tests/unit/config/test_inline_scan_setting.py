# SPDX-License-Identifier: Apache-2.0
"""ATTESTOR_ISSUE_INLINE_SCAN_BYTES: what a request may decompress before it becomes a job."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestor.config import load_settings
from attestor.errors import ConfigError


def test_default_and_env(tmp_path: Path) -> None:
    base = {"ATTESTOR_DATA_DIR": str(tmp_path / "var")}
    assert load_settings(base).issue_inline_scan_bytes == 8 * 1024 * 1024
    env = {**base, "ATTESTOR_ISSUE_INLINE_SCAN_BYTES": "4096"}
    assert load_settings(env).issue_inline_scan_bytes == 4096
    with pytest.raises(ConfigError, match="issue_inline_scan_bytes must be a positive integer"):
        load_settings({**base, "ATTESTOR_ISSUE_INLINE_SCAN_BYTES": "0"})


def test_expansion_ratio_setting(tmp_path: Path) -> None:
    base = {"ATTESTOR_DATA_DIR": str(tmp_path / "var")}
    assert load_settings(base).layer_max_expansion_ratio is None
    settings = load_settings({**base, "ATTESTOR_LAYER_MAX_EXPANSION_RATIO": "50000"})
    assert settings.layer_max_expansion_ratio == 50000
    with pytest.raises(ConfigError, match="layer_max_expansion_ratio must be a positive integer"):
        load_settings({**base, "ATTESTOR_LAYER_MAX_EXPANSION_RATIO": "0"})
