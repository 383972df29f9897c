# SPDX-License-Identifier: Apache-2.0
"""Keyless signing configuration: every wrong setting fails at start with one line."""

from __future__ import annotations

import json

import pytest

from attestor.errors import ConfigError
from attestor.keyless import (
    EnvToken,
    FileToken,
    KeylessConfig,
    KeylessSigner,
    load_trust_config,
)
from attestor.sigstore_internals import embedded_trust_file


def _jwt() -> str:
    """A well-formed, unsigned token with the claims sigstore-python requires."""
    import base64
    import json
    import time

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": "sigstore",
        "iss": "https://issuer.example",
        "sub": "ci@example.com",
        "email": "ci@example.com",
        "email_verified": True,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


TOKEN = _jwt()


def _one_line(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("instance", ["production", "staging"])
def test_embedded_trust_configs_load_offline(instance) -> None:
    config = load_trust_config(instance)
    assert config.trusted_root.get_fulcio_certs()
    assert config.signing_config.get_tlogs()


def test_force_tlog_version_1_selects_rekor_v1() -> None:
    config = load_trust_config("staging")
    config.force_tlog_version = 1
    from sigstore._internal.rekor.client import RekorClient

    assert all(isinstance(t, RekorClient) for t in config.signing_config.get_tlogs())


def test_signer_builds_with_env_token() -> None:
    signer = KeylessSigner(
        KeylessConfig(instance="staging", token_env="TOK", force_tlog_version=1),
        environ={"TOK": TOKEN},
    )
    assert signer is not None


def test_custom_config_file(tmp_path) -> None:
    doc = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(embedded_trust_file("staging", "trusted_root.json")),
        "signingConfig": json.loads(embedded_trust_file("staging", "signing_config.v0.2.json")),
    }
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(doc))
    assert load_trust_config("custom", path).trusted_root is not None
    doc["signingConfig"]["caUrls"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="Fulcio") as excinfo:
        KeylessSigner(
            KeylessConfig(instance="custom", trust_config=path, token_env="T"), environ={"T": TOKEN}
        )
    _one_line(excinfo)


@pytest.mark.parametrize(
    ("config", "environ", "reason"),
    [
        (KeylessConfig(), {}, "exactly one identity token source"),
        (KeylessConfig(token_env="A", ambient_token=True), {"A": TOKEN}, "exactly one"),
        (KeylessConfig(token_env="A"), {}, "A is unset"),
        (KeylessConfig(token_env="A"), {"A": "  "}, "A is unset"),
        (KeylessConfig(token_env="A", force_tlog_version=3), {"A": TOKEN}, "force_tlog_version"),
        (KeylessConfig(instance="custom", token_env="A"), {"A": TOKEN}, "needs a trust config"),
        (
            KeylessConfig(instance="nightly", token_env="A"),
            {"A": TOKEN},
            "unknown keyless instance",
        ),  # type: ignore[arg-type]
    ],
)
def test_bad_config_fails_at_start(config, environ, reason) -> None:
    with pytest.raises(ConfigError, match=reason) as excinfo:
        KeylessSigner(config, environ=environ)
    _one_line(excinfo)


def test_token_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        KeylessSigner(KeylessConfig(token_file=tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        KeylessSigner(KeylessConfig(token_file=empty))


def test_token_file_is_reread(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    source = FileToken(path)
    assert source.token() == "one"
    path.write_text("two\n")
    assert source.token() == "two"
    assert EnvToken("X", {"X": " t "}).token() == "t"


def test_bad_custom_file(tmp_path) -> None:
    path = tmp_path / "trust.json"
    path.write_text('{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}')
    with pytest.raises(ConfigError, match="trust config") as excinfo:
        load_trust_config("custom", path)
    _one_line(excinfo)
    with pytest.raises(ConfigError, match="No such file"):
        load_trust_config("custom", tmp_path / "nope.json")
