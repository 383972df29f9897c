# SPDX-License-Identifier: Apache-2.0
"""Issuance settings: download budget, registry credentials file, signing mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.cli._startup import check_start_up
from attestor.config import Settings, keyless_config, load_settings
from attestor.errors import ConfigError
from attestor.keyless import KeylessConfig, KeylessSigner
from attestor.registry import Credentials, load_registry_credentials

ISSUER = "https://oidc.attestor.test"


def _token(**claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": "ci@attestor.test",
        "aud": "sigstore",
        "iat": now,
        "exp": now + 600,
        "email_verified": True,
        **claims,
    }
    # The signature is Fulcio's to check; a throwaway key is enough here.
    return jwt.encode(body, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


def _start(env: dict[str, str]) -> Settings:
    """Settings as `attestor serve` and `attestor worker` accept them at start."""
    settings = load_settings(env)
    check_start_up(settings, env)
    return settings


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    return {"ATTESTOR_DATA_DIR": str(tmp_path / "var")}


def test_defaults(base: dict[str, str]) -> None:
    s = load_settings(base)
    assert s.issue_defer_above_bytes == 256 * 1024 * 1024
    assert s.signing_mode == "key"
    assert s.keyless_instance == "production"
    assert s.registry_credentials_file is None


def test_defer_budget_from_env(base: dict[str, str]) -> None:
    assert (
        load_settings({**base, "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "1"}).issue_defer_above_bytes
        == 1
    )
    with pytest.raises(ConfigError, match="issue_defer_above_bytes must be a positive integer"):
        load_settings({**base, "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "0"})


def _creds_file(tmp_path: Path, body: str, mode: int = 0o600) -> Path:
    path = tmp_path / "creds.yaml"
    path.write_text(body)
    path.chmod(mode)
    return path


def test_credentials_file_basic_and_token(tmp_path: Path, base: dict[str, str]) -> None:
    path = _creds_file(
        tmp_path,
        json.dumps(
            {
                "Registry.Example.com": {"username": "ci", "password": "s3cret"},
                "ghcr.io": {"token": "tok-123"},
            }
        ),
        0o640,
    )
    s = load_settings({**base, "ATTESTOR_REGISTRY_CREDENTIALS_FILE": str(path)})
    creds = load_registry_credentials(s.registry_credentials_file or path)
    assert creds == {
        "registry.example.com": Credentials("ci", "s3cret"),
        "ghcr.io": Credentials(token="tok-123"),
    }
    assert "s3cret" not in repr(creds) and "tok-123" not in repr(creds)


@pytest.mark.parametrize(
    ("body", "mode", "fragment"),
    [
        ('h: {username: u, password: "pw-secret"}', 0o644, "accessible to other users (mode 0644)"),
        ('h: {username: u, password: "pw-secret"}', 0o602, "accessible to other users"),
        ("- a\n- b\n", 0o600, "must map hosts to credentials"),
        (
            'h: {username: u, password: "pw-secret", token: t}',
            0o600,
            "got password, token, username",
        ),
        ("h: {username: u}", 0o600, "exactly username and password, or token"),
        ('h: {username: u, password: ""}', 0o600, "non-empty string"),
        ('"a/b": {token: t}', 0o600, "is not a host[:port]"),
        ('h: "pw-secret"', 0o600, "must be a mapping"),
        ('h: {username: u, password: "pw-secret"', 0o600, "not valid YAML/JSON"),
    ],
)
def test_bad_credentials_files(
    tmp_path: Path, base: dict[str, str], body: str, mode: int, fragment: str
) -> None:
    path = _creds_file(tmp_path, body, mode)
    with pytest.raises(ConfigError) as err:
        _start({**base, "ATTESTOR_REGISTRY_CREDENTIALS_FILE": str(path)})
    assert fragment in err.value.message
    assert "pw-secret" not in err.value.message and "\n" not in err.value.message


def test_keyless_settings_build_the_signer_config(tmp_path: Path, base: dict[str, str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_token())
    env = {
        **base,
        "ATTESTOR_SIGNING_MODE": "keyless",
        "ATTESTOR_KEYLESS_INSTANCE": "staging",
        "ATTESTOR_KEYLESS_TOKEN_FILE": str(token_file),
        "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "1",
    }
    s = load_settings(env)
    assert (s.signing_mode, s.keyless_instance, s.keyless_force_tlog_version) == (
        "keyless",
        "staging",
        1,
    )
    config = keyless_config(s)
    assert config == KeylessConfig(instance="staging", token_file=token_file, force_tlog_version=1)
    KeylessSigner(config)  # offline: embedded staging trust config


def test_keyless_token_from_env_variable(base: dict[str, str]) -> None:
    env = {
        **base,
        "ATTESTOR_SIGNING_MODE": "keyless",
        "ATTESTOR_KEYLESS_TOKEN_ENV": "CI_OIDC_TOKEN",
        "CI_OIDC_TOKEN": _token(),
    }
    assert _start(env).keyless_token_env == "CI_OIDC_TOKEN"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"ATTESTOR_SIGNING_MODE": "kms"}, "signing_mode must be one of key, keyless"),
        ({"ATTESTOR_KEYLESS_TOKEN_ENV": "T"}, "keyless_token_env set but signing_mode is 'key'"),
        ({"ATTESTOR_KEYLESS_AMBIENT": "1"}, "keyless_ambient set but signing_mode is 'key'"),
        ({"ATTESTOR_SIGNING_MODE": "keyless"}, "exactly one identity token source"),
        (
            {
                "ATTESTOR_SIGNING_MODE": "keyless",
                "ATTESTOR_KEYLESS_AMBIENT": "true",
                "ATTESTOR_KEYLESS_TOKEN_ENV": "T",
            },
            "exactly one identity token source",
        ),
        (
            {"ATTESTOR_SIGNING_MODE": "keyless", "ATTESTOR_KEYLESS_TOKEN_ENV": "UNSET_TOKEN"},
            "UNSET_TOKEN is unset",
        ),
        (
            {"ATTESTOR_SIGNING_MODE": "keyless", "ATTESTOR_KEYLESS_TOKEN_ENV": "1bad"},
            "keyless_token_env must be an environment variable name",
        ),
        (
            {
                "ATTESTOR_SIGNING_MODE": "keyless",
                "ATTESTOR_KEYLESS_TOKEN_ENV": "T",
                "T": "not.a.jwt",
            },
            "identity token unusable",
        ),
        (
            {
                "ATTESTOR_SIGNING_MODE": "keyless",
                "ATTESTOR_KEYLESS_INSTANCE": "custom",
                "ATTESTOR_KEYLESS_TOKEN_ENV": "T",
                "T": "x",
            },
            "needs a trust config file",
        ),
        (
            {"ATTESTOR_SIGNING_MODE": "keyless", "ATTESTOR_KEYLESS_INSTANCE": "prod"},
            "keyless_instance must be one of production, staging, custom",
        ),
        (
            {"ATTESTOR_SIGNING_MODE": "keyless", "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "3"},
            "keyless_force_tlog_version must be 1 or 2",
        ),
        (
            {
                "ATTESTOR_SIGNING_MODE": "keyless",
                "ATTESTOR_SIGNING_KEY": "file:///k.pem",
                "ATTESTOR_KEYLESS_TOKEN_ENV": "T",
            },
            "signing_key is set but signing_mode is 'keyless'",
        ),
    ],
)
def test_misconfigured_signing_mode(
    base: dict[str, str], extra: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _start({**base, **extra})
    assert fragment in err.value.message
    assert "\n" not in err.value.message


def test_expired_token_fails_at_start(tmp_path: Path, base: dict[str, str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))
    env = {
        **base,
        "ATTESTOR_SIGNING_MODE": "keyless",
        "ATTESTOR_KEYLESS_TOKEN_FILE": str(token_file),
    }
    with pytest.raises(ConfigError, match="identity token unusable"):
        _start(env)


def test_cli_exits_2_with_one_line_on_bad_signing_mode(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ATTESTOR_DATA_DIR": str(tmp_path),
        "ATTESTOR_SIGNING_MODE": "keyless",
    }
    assert "exactly one identity token source" in _one_line_exit_2(env, "admin", "migrate")


def test_load_settings_reads_no_token_and_no_credentials_file(
    tmp_path: Path, base: dict[str, str]
) -> None:
    # Parsing settings is pure: the token and the credentials file are read by
    # the start-up check of `attestor serve` and `attestor worker` only.
    creds = _creds_file(tmp_path, 'h: {username: u, password: "pw-secret"}', 0o644)
    env = {
        **base,
        "ATTESTOR_SIGNING_MODE": "keyless",
        "ATTESTOR_KEYLESS_TOKEN_ENV": "UNSET_TOKEN",
        "ATTESTOR_REGISTRY_CREDENTIALS_FILE": str(creds),
    }
    s = load_settings(env)
    assert (s.keyless_token_env, s.registry_credentials_file) == ("UNSET_TOKEN", creds)
    with pytest.raises(ConfigError, match="UNSET_TOKEN is unset"):
        check_start_up(s, env)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_exit_2_with_one_line_on_unusable_token(
    tmp_path: Path, command: str
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ATTESTOR_DATA_DIR": str(tmp_path),
        "ATTESTOR_SIGNING_MODE": "keyless",
        "ATTESTOR_KEYLESS_TOKEN_ENV": "CI_OIDC_TOKEN",
        "CI_OIDC_TOKEN": "not.a.jwt",
    }
    assert "identity token unusable" in _one_line_exit_2(env, command)


def _one_line_exit_2(env: dict[str, str], *args: str) -> str:
    """Run `attestor <args>`, which must exit 2 with one line on stderr; that line."""
    proc = subprocess.run(
        [sys.executable, "-m", "attestor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]
