# SPDX-License-Identifier: Apache-2.0
"""Bulk verification settings: defaults, environment, YAML and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestor.config import load_settings
from attestor.errors import ConfigError


def test_bulk_defaults(tmp_path: Path) -> None:
    s = load_settings({"ATTESTOR_DATA_DIR": str(tmp_path)})
    assert (s.max_bulk_items, s.bulk_chunk_size, s.bulk_chunk_timeout_s) == (10_000, 2000, 60)


def test_bulk_from_env_over_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_bulk_items: 50\nbulk_chunk_size: 7\nbulk_chunk_timeout_s: 9\n")
    s = load_settings(
        {
            "ATTESTOR_CONFIG": str(cfg),
            "ATTESTOR_DATA_DIR": str(tmp_path),
            "ATTESTOR_BULK_CHUNK_SIZE": "25",
        }
    )
    assert (s.max_bulk_items, s.bulk_chunk_size, s.bulk_chunk_timeout_s) == (50, 25, 9)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ATTESTOR_MAX_BULK_ITEMS", "0"),
        ("ATTESTOR_MAX_BULK_ITEMS", "ten"),
        ("ATTESTOR_BULK_CHUNK_SIZE", "-5"),
        ("ATTESTOR_BULK_CHUNK_SIZE", "1.5"),
        ("ATTESTOR_BULK_CHUNK_TIMEOUT_S", "0"),
        ("ATTESTOR_BULK_CHUNK_TIMEOUT_S", "60s"),
    ],
)
def test_bulk_nonsense_refused(tmp_path: Path, var: str, value: str) -> None:
    name = var.removeprefix("ATTESTOR_").lower()
    with pytest.raises(ConfigError, match=f"{name} must be a positive integer"):
        load_settings({"ATTESTOR_DATA_DIR": str(tmp_path), var: value})
