# SPDX-License-Identifier: Apache-2.0
"""``ATTESTOR_KEY_FILES``: whether /v1/keys may write key files into the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestor.config import load_settings
from attestor.errors import ConfigError

KEY = "file:///etc/attestor/keys/signing-key.pem"


def test_default_is_local(tmp_path: Path) -> None:
    assert load_settings({"ATTESTOR_DATA_DIR": str(tmp_path)}).key_files == "local"


def test_external_from_env_and_yaml(tmp_path: Path) -> None:
    env = {"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_SIGNING_KEY": KEY}
    assert load_settings({**env, "ATTESTOR_KEY_FILES": "External"}).key_files == "external"
    config = tmp_path / "attestor.yaml"
    config.write_text("key_files: external\n")
    assert load_settings(env, config).key_files == "external"


def test_unknown_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key_files must be one of local, external"):
        load_settings({"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_KEY_FILES": "shared"})


def test_external_needs_a_signing_key(tmp_path: Path) -> None:
    # Else the first start would generate the active key into one replica's data dir.
    with pytest.raises(ConfigError, match="ATTESTOR_SIGNING_KEY"):
        load_settings({"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_KEY_FILES": "external"})
