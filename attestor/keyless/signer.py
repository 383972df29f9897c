# SPDX-License-Identifier: Apache-2.0
"""Keyless (Fulcio + Rekor) signing of in-toto statements with sigstore-python 4.5.

The trust configuration is a ClientTrustConfig: the public-good production or
staging one embedded in sigstore-python (read offline; no TUF refresh), or a
custom JSON file for a private Sigstore. The OIDC identity token comes from
exactly one source:

* a file, re-read on every signature (projected service-account tokens rotate);
* an environment variable, read on every signature;
* ambient CI credentials (``sigstore.oidc.detect_credential``).

Everything that can be checked is checked in the constructor, so a wrongly
configured signing mode fails at start with one :class:`ConfigError` line.
Signing itself talks to Fulcio, Rekor and any TSA: failures there are
:class:`UpstreamError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import ClientTrustConfig
from sigstore.oidc import detect_credential
from sigstore.sign import SigningContext
from sigstore_models.trustroot import v1 as trustroot_v1

from attestor.errors import ConfigError
from attestor.keyless._sign import parse_identity_token, sign_dsse_bundle
from attestor.sigstore_internals import (
    EMBEDDED_INSTANCES,
    client_trust_config_from_model,
    embedded_trust_file,
)

__all__ = [
    "AmbientToken",
    "EnvToken",
    "FileToken",
    "KeylessConfig",
    "KeylessSigner",
    "TokenSource",
    "check_config",
    "load_trust_config",
]

_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
_MAX_TOKEN_BYTES = 64 * 1024


class TokenSource(Protocol):
    """Where the OIDC identity token comes from; asked once per signature."""

    def token(self) -> str:
        """The current raw JWT.

        Raises:
            ConfigError: if the source no longer yields a token.
        """
        ...


@dataclass(frozen=True)
class FileToken:
    """A token file, re-read on every use (Kubernetes projected tokens rotate)."""

    path: Path

    def token(self) -> str:
        """Raises: ConfigError: if the file is unreadable, empty or huge."""
        try:
            data = self.path.read_bytes()[: _MAX_TOKEN_BYTES + 1]
        except OSError as e:
            raise ConfigError(f"identity token file {self.path}: {e.strerror}") from None
        if len(data) > _MAX_TOKEN_BYTES:
            raise ConfigError(f"identity token file {self.path}: over {_MAX_TOKEN_BYTES} bytes")
        text = data.decode("utf-8", "replace").strip()
        if not text:
            raise ConfigError(f"identity token file {self.path} is empty")
        return text


@dataclass(frozen=True)
class EnvToken:
    """A token in an environment variable, read on every use."""

    name: str
    environ: Mapping[str, str] | None = None

    def token(self) -> str:
        """Raises: ConfigError: if the variable is unset or empty."""
        env = os.environ if self.environ is None else self.environ
        value = env.get(self.name, "").strip()
        if not value:
            raise ConfigError(f"identity token variable {self.name} is unset or empty")
        return value


@dataclass(frozen=True)
class AmbientToken:
    """Ambient CI credentials (GitHub Actions, GitLab, Buildkite, GCP...)."""

    def token(self) -> str:
        """Raises: ConfigError: if no ambient credential is available."""
        try:
            value = detect_credential()
        except SigstoreError as e:
            raise ConfigError(f"ambient identity token: {e}") from None
        if not value:
            raise ConfigError("no ambient OIDC credential found in this environment")
        return value


@dataclass(frozen=True)
class KeylessConfig:
    """Keyless signing settings (from :class:`attestor.config.Settings`)."""

    instance: Literal["production", "staging", "custom"] = "production"
    #: ClientTrustConfig JSON; required for ``custom``.
    trust_config: Path | None = None
    token_file: Path | None = None
    token_env: str | None = None
    ambient_token: bool = False
    #: 1 forces Rekor v1 even when the signing config lists v2 (e.g. local mocks).
    force_tlog_version: int | None = None


def check_config(config: KeylessConfig) -> None:
    """Check the values of a keyless configuration; reads no file, token or variable.

    Raises:
        ConfigError: one line naming the wrong setting.
    """
    sources = [config.token_file is not None, config.token_env is not None, config.ambient_token]
    if sum(sources) != 1:
        raise ConfigError(
            "keyless signing needs exactly one identity token source "
            f"(token_file, token_env, ambient_token), got {sum(sources)}"
        )
    if config.force_tlog_version not in (None, 1, 2):
        raise ConfigError(f"force_tlog_version must be 1 or 2, got {config.force_tlog_version}")
    if config.instance == "custom" and config.trust_config is None:
        raise ConfigError("keyless instance 'custom' needs a trust config file")
    if config.instance != "custom" and config.trust_config is not None:
        raise ConfigError(f"keyless instance {config.instance!r} takes no trust config file")


def load_trust_config(
    instance: Literal["production", "staging", "custom"], path: Path | None = None
) -> ClientTrustConfig:
    """A ClientTrustConfig: embedded public-good one (offline) or a custom file.

    Raises:
        ConfigError: if the instance is unknown, the file is missing or invalid.
    """
    try:
        if instance == "custom":
            if path is None:
                raise ConfigError("keyless instance 'custom' needs a trust config file")
            data = path.read_bytes()
            inner = trustroot_v1.ClientTrustConfig.from_json(data)
            if inner.media_type != _CONFIG_MEDIA_TYPE:
                raise ConfigError(f"trust config {path}: unsupported mediaType {inner.media_type}")
        elif instance in EMBEDDED_INSTANCES:
            if path is not None:
                raise ConfigError(f"keyless instance {instance!r} takes no trust config file")
            inner = trustroot_v1.ClientTrustConfig(
                media_type=_CONFIG_MEDIA_TYPE,
                trusted_root=trustroot_v1.TrustedRoot.from_json(
                    embedded_trust_file(instance, "trusted_root.json")
                ),
                signing_config=trustroot_v1.SigningConfig.from_json(
                    embedded_trust_file(instance, "signing_config.v0.2.json")
                ),
            )
        else:
            raise ConfigError(f"unknown keyless instance {instance!r}")
        return client_trust_config_from_model(inner)
    except OSError as e:
        raise ConfigError(f"trust config {path}: {e.strerror}") from None
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"trust config {path or instance}: {where}: {first['msg']}") from None


class KeylessSigner:
    """Signs in-toto statements keylessly; returns Sigstore bundle v0.3 JSON."""

    def __init__(self, config: KeylessConfig, *, environ: Mapping[str, str] | None = None) -> None:
        """Validate everything that can be validated before the first signature.

        Raises:
            ConfigError: one line naming the wrong setting.
        """
        check_config(config)
        self._tokens: TokenSource
        if config.token_file is not None:
            self._tokens = FileToken(config.token_file)
        elif config.token_env is not None:
            self._tokens = EnvToken(config.token_env, environ)
        else:
            self._tokens = AmbientToken()
        trust = load_trust_config(config.instance, config.trust_config)
        trust.force_tlog_version = config.force_tlog_version
        try:
            self._context = SigningContext.from_trust_config(trust)
        except (SigstoreError, ValueError) as e:
            raise ConfigError(f"keyless signing config: {e}") from None
        # Fail now, not at the first request: the source must yield a usable token.
        parse_identity_token(self._tokens.token())

    def sign_statement(self, statement: bytes) -> dict[str, Any]:
        """Sign an in-toto statement (JSON bytes) as DSSE; return the bundle JSON.

        Each call gets its own ephemeral key and Fulcio certificate.

        Raises:
            ConfigError: if the token source stopped yielding a usable token.
            InvalidInput: if ``statement`` is not an in-toto statement.
            UpstreamError: if the token is rejected or Fulcio/Rekor/TSA fail.
        """
        return sign_dsse_bundle(self._context, self._tokens.token(), statement)
