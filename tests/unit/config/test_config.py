# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from attestor.config import load_settings
from attestor.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({"ATTESTOR_DATA_DIR": str(tmp_path)})
    assert s.data_dir == tmp_path
    assert s.database_url == f"sqlite:///{tmp_path}/attestor.db"
    assert s.redis_url is None
    assert s.max_body_bytes == 1024 * 1024
    assert s.max_bulk_body_bytes == 64 * 1024 * 1024
    assert s.max_manifest_bytes == s.max_config_bytes == 4 * 1024 * 1024
    assert s.insecure_registries == frozenset()
    assert s.signing_key is None
    assert s.builder_id.startswith("https://attestor.local/builder/")
    assert s.attach_attestations is False
    assert s.keys_dir == tmp_path / "keys"


def test_env_overrides_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "max_body_bytes: 2048\nredis_url: redis://127.0.0.1:1/0\n"
        "insecure_registries: [a:1, 'B:2']\nattach_attestations: true\n"
    )
    s = load_settings(
        {
            "ATTESTOR_CONFIG": str(cfg),
            "ATTESTOR_DATA_DIR": str(tmp_path),
            "ATTESTOR_MAX_BODY_BYTES": "4096",
        }
    )
    assert s.max_body_bytes == 4096
    assert s.redis_url == "redis://127.0.0.1:1/0"
    assert s.insecure_registries == frozenset({"a:1", "b:2"})
    assert s.attach_attestations is True


def test_insecure_registries_comma_list() -> None:
    s = load_settings({"ATTESTOR_INSECURE_REGISTRIES": "127.0.0.1:5000, localhost:1234,"})
    assert s.insecure_registries == frozenset({"127.0.0.1:5000", "localhost:1234"})


def test_postgres_url_uses_psycopg() -> None:
    s = load_settings({"DATABASE_URL": "postgresql://u:p@127.0.0.1:5/db"})
    assert s.database_url == "postgresql+psycopg://u:p@127.0.0.1:5/db"


def test_admin_token_not_in_repr() -> None:
    s = load_settings({"ATTESTOR_ADMIN_TOKEN": "x" * 32})
    assert "x" * 32 not in repr(s)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "mysql"),
        ({"DATABASE_URL": "postgresql+psycopg2://u@h/db"}, "psycopg2"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"ATTESTOR_MAX_BODY_BYTES": "-1"}, "max_body_bytes"),
        ({"ATTESTOR_MAX_BODY_BYTES": "lots"}, "max_body_bytes"),
        ({"ATTESTOR_MAX_BULK_BODY_BYTES": "10"}, "max_bulk_body_bytes"),
        ({"ATTESTOR_INSECURE_REGISTRIES": "nohost"}, "host:port"),
        ({"ATTESTOR_INSECURE_REGISTRIES": "h:99999"}, "host:port"),
        ({"ATTESTOR_ATTACH_ATTESTATIONS": "maybe"}, "attach_attestations"),
        ({"ATTESTOR_ADMIN_TOKEN": "short"}, "16 characters"),
        ({"ATTESTOR_BUILDER_ID": "not-a-uri"}, "builder_id"),
        (
            {"ATTESTOR_REGISTRY_CREDENTIALS_FILE": "/nonexistent/creds.yaml"},
            "registry_credentials_file",
        ),
        ({"ATTESTOR_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"ATTESTOR_CONFIG": "/nonexistent/attestor.yaml"}, "cannot read"),
    ],
)
def test_invalid_values(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert fragment in info.value.message
    assert "\n" not in info.value.message


def test_unknown_yaml_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_bodybytes: 1\n")
    with pytest.raises(ConfigError, match="unknown settings: max_bodybytes"):
        load_settings({}, cfg)


def test_bad_database_url_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "ATTESTOR_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "oracle://x/y",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "attestor", "admin", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DATABASE_URL" in lines[0]
    assert "Traceback" not in proc.stderr
