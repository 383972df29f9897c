# SPDX-License-Identifier: Apache-2.0
"""Registry credentials from a file: ``{host: {username, password}}`` or ``{host: {token}}``.

A username/password entry may add ``auth_hosts``: the ``host[:port]`` of token
services on other hosts (Docker Hub's ``auth.docker.io``) that may receive
them. Without it the credentials go to the registry's own host only.

The file is YAML (JSON is valid YAML). It holds secrets, so it must not be
readable by other users: a world-readable file is refused rather than used,
the way ssh refuses a private key with loose permissions. Messages name hosts
and keys, never the secrets.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from attestor.errors import ConfigError
from attestor.registry.auth import Credentials

__all__ = ["MAX_CREDENTIALS_FILE_BYTES", "load_registry_credentials"]

MAX_CREDENTIALS_FILE_BYTES = 1024 * 1024
_BASIC = frozenset({"username", "password"})
_BASIC_REALMS = frozenset({"username", "password", "auth_hosts"})
_TOKEN = frozenset({"token"})


def load_registry_credentials(path: Path) -> Mapping[str, Credentials]:
    """Read and validate a credentials file.

    Args:
        path: YAML or JSON mapping of ``host[:port]`` to ``{username, password}``
            or ``{token}`` (a static bearer token).

    Returns:
        Credentials by lower-cased host.

    Raises:
        ConfigError: the file is unreadable, world-readable or writable, too
            large, not a mapping, or an entry has the wrong keys or types.
    """
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ConfigError(
                f"registry credentials file {path} is accessible to other users "
                f"(mode {stat.S_IMODE(mode):04o}); chmod o-rwx it"
            )
        with path.open("rb") as f:
            data = f.read(MAX_CREDENTIALS_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"registry credentials file {path}: {e.strerror}") from None
    if len(data) > MAX_CREDENTIALS_FILE_BYTES:
        raise ConfigError(
            f"registry credentials file {path} exceeds {MAX_CREDENTIALS_FILE_BYTES} bytes"
        )
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        # No detail: the parser's message may quote a line holding a password.
        raise ConfigError(f"registry credentials file {path} is not valid YAML/JSON") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"registry credentials file {path} must map hosts to credentials")
    return {str(host).lower(): _entry(path, str(host), value) for host, value in doc.items()}


def _entry(path: Path, host: str, value: Any) -> Credentials:
    where = f"registry credentials file {path}: {host[:255]!r}"
    if not host or any(c.isspace() or c == "/" for c in host):
        raise ConfigError(f"{where} is not a host[:port]")
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping with username/password or token")
    keys = frozenset(str(k) for k in value)
    if keys not in (_BASIC, _BASIC_REALMS, _TOKEN):
        raise ConfigError(
            f"{where} must have exactly username and password, or token (plus "
            f"auth_hosts, optionally); got {', '.join(sorted(keys)) or 'nothing'}"
        )
    if not all(isinstance(v, str) and v for k, v in value.items() if k != "auth_hosts"):
        raise ConfigError(f"{where}: every value must be a non-empty string")
    if keys == _TOKEN:
        return Credentials(token=value["token"])
    return Credentials(value["username"], value["password"], auth_hosts=_auth_hosts(where, value))


def _auth_hosts(where: str, value: dict[str, Any]) -> frozenset[str]:
    hosts = value.get("auth_hosts", [])
    if not isinstance(hosts, list) or not all(
        isinstance(h, str) and h and not any(c.isspace() or c in "/@" for c in h) for h in hosts
    ):
        raise ConfigError(f"{where}: auth_hosts must be a list of host[:port]")
    return frozenset(h.lower() for h in hosts)
