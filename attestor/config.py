# SPDX-License-Identifier: Apache-2.0
"""Server settings: a frozen dataclass built from the environment and an optional YAML file.

Precedence: environment variable > YAML file > embedded default. ``ATTESTOR_CONFIG``
names the YAML file. Every value is validated here, once; an invalid value raises
:class:`~attestor.errors.ConfigError` with one line that names the setting.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from attestor.errors import ConfigError

if TYPE_CHECKING:
    from attestor.keyless import KeylessConfig

__all__ = ["ENV_VARS", "Settings", "keyless_config", "load_settings"]

MIB = 1024 * 1024
SIGNING_MODES = ("key", "keyless")
KEYLESS_INSTANCES = ("production", "staging", "custom")
KEY_FILES = ("local", "external")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated configuration of the server, the CLI and the workers."""

    data_dir: Path
    #: May hold a password, so it stays out of repr() (and so out of logs).
    database_url: str = field(repr=False)
    redis_url: str | None = field(default=None, repr=False)
    #: Seeds an admin token at start; never logged or shown.
    admin_token: str | None = field(default=None, repr=False)
    policy_dir: Path = Path("policies")
    #: host:port pairs that may be reached over plain HTTP; all others need HTTPS.
    insecure_registries: frozenset[str] = frozenset()
    max_body_bytes: int = 1 * MIB
    max_bulk_body_bytes: int = 64 * MIB
    #: Items one ``POST /v1/verifications`` may carry.
    max_bulk_items: int = 10_000
    #: Items per rq job of a bulk verification, and that job's timeout.
    bulk_chunk_size: int = 2000
    bulk_chunk_timeout_s: int = 60
    #: Signer URI; ``None`` selects the generated default key under ``data_dir/keys``.
    signing_key: str | None = None
    #: ``local``: ``/v1/keys`` may generate and import key files into ``keys_dir``;
    #: ``external``: ``keys_dir`` is replica-local scratch, so keys come only from
    #: signer URIs that every replica can load (``ATTESTOR_SIGNING_KEY``, imports).
    key_files: Literal["local", "external"] = "local"
    builder_id: str = "https://attestor.local/builder/localhost"
    attach_attestations: bool = False
    #: YAML/JSON ``{host: {username, password} | {token}}``; must not be world-readable.
    registry_credentials_file: Path | None = None
    max_manifest_bytes: int = 4 * MIB
    max_config_bytes: int = 4 * MIB
    #: host[:port] of blob stores / CDNs and of token services that registries
    #: may send us to even at non-public addresses (besides policy registries).
    registry_blob_hosts: frozenset[str] = frozenset()
    registry_auth_hosts: frozenset[str] = frozenset()
    #: Total seconds for one manifest, config, token or push exchange.
    registry_request_deadline_s: int = 30
    #: A blob of N bytes gets floor + N / min_bytes_per_s seconds, at most max_s.
    registry_blob_deadline_floor_s: int = 60
    registry_blob_min_bytes_per_s: int = 1 * MIB
    registry_blob_deadline_max_s: int = 3600
    log_level: str = "INFO"
    #: Bytes of uncached layer blobs above which ``POST /v1/attestations`` answers 202 + job.
    issue_defer_above_bytes: int = 256 * MIB
    #: Uncompressed bytes of never-scanned layers a request may read; past it, 202 + job.
    issue_inline_scan_bytes: int = 8 * MIB
    #: Uncompressed bytes per compressed byte a layer may expand to past its
    #: first 128 MiB; ``None``: ``ManifestLimits``'s default (1100, above gzip's best).
    layer_max_expansion_ratio: int | None = None
    #: ``key``: the active local key signs; ``keyless``: Fulcio certificate + Rekor entry.
    signing_mode: Literal["key", "keyless"] = "key"
    keyless_instance: Literal["production", "staging", "custom"] = "production"
    #: ClientTrustConfig JSON of a private Sigstore (``keyless_instance: custom``).
    keyless_trust_config: Path | None = None
    #: Exactly one identity token source in keyless mode: a file (re-read per
    #: signature), an environment variable name, or ambient CI credentials.
    keyless_token_file: Path | None = None
    keyless_token_env: str | None = None
    keyless_ambient: bool = False
    #: 1 forces Rekor v1 even where the signing config lists v2.
    keyless_force_tlog_version: int | None = None
    #: Seconds between heartbeats of in-process jobs; a job whose process missed
    #: three is failed as interrupted (no Redis only).
    inline_heartbeat_s: int = 15

    @property
    def keys_dir(self) -> Path:
        """Directory of generated signing keys (mode 0700)."""
        return self.data_dir / "keys"


# Setting name -> environment variable. YAML files use the setting names as keys.
ENV_VARS: Mapping[str, str] = {
    "data_dir": "ATTESTOR_DATA_DIR",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "admin_token": "ATTESTOR_ADMIN_TOKEN",
    "policy_dir": "ATTESTOR_POLICY_DIR",
    "insecure_registries": "ATTESTOR_INSECURE_REGISTRIES",
    "max_body_bytes": "ATTESTOR_MAX_BODY_BYTES",
    "max_bulk_body_bytes": "ATTESTOR_MAX_BULK_BODY_BYTES",
    "max_bulk_items": "ATTESTOR_MAX_BULK_ITEMS",
    "bulk_chunk_size": "ATTESTOR_BULK_CHUNK_SIZE",
    "bulk_chunk_timeout_s": "ATTESTOR_BULK_CHUNK_TIMEOUT_S",
    "signing_key": "ATTESTOR_SIGNING_KEY",
    "key_files": "ATTESTOR_KEY_FILES",
    "builder_id": "ATTESTOR_BUILDER_ID",
    "attach_attestations": "ATTESTOR_ATTACH_ATTESTATIONS",
    "registry_credentials_file": "ATTESTOR_REGISTRY_CREDENTIALS_FILE",
    "max_manifest_bytes": "ATTESTOR_MAX_MANIFEST_BYTES",
    "max_config_bytes": "ATTESTOR_MAX_CONFIG_BYTES",
    "registry_blob_hosts": "ATTESTOR_REGISTRY_BLOB_HOSTS",
    "registry_auth_hosts": "ATTESTOR_REGISTRY_AUTH_HOSTS",
    "registry_request_deadline_s": "ATTESTOR_REGISTRY_REQUEST_DEADLINE_S",
    "registry_blob_deadline_floor_s": "ATTESTOR_REGISTRY_BLOB_DEADLINE_FLOOR_S",
    "registry_blob_min_bytes_per_s": "ATTESTOR_REGISTRY_BLOB_MIN_BYTES_PER_S",
    "registry_blob_deadline_max_s": "ATTESTOR_REGISTRY_BLOB_DEADLINE_MAX_S",
    "log_level": "ATTESTOR_LOG_LEVEL",
    "issue_defer_above_bytes": "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES",
    "issue_inline_scan_bytes": "ATTESTOR_ISSUE_INLINE_SCAN_BYTES",
    "layer_max_expansion_ratio": "ATTESTOR_LAYER_MAX_EXPANSION_RATIO",
    "signing_mode": "ATTESTOR_SIGNING_MODE",
    "keyless_instance": "ATTESTOR_KEYLESS_INSTANCE",
    "keyless_trust_config": "ATTESTOR_KEYLESS_TRUST_CONFIG",
    "keyless_token_file": "ATTESTOR_KEYLESS_TOKEN_FILE",
    "keyless_token_env": "ATTESTOR_KEYLESS_TOKEN_ENV",
    "keyless_ambient": "ATTESTOR_KEYLESS_AMBIENT",
    "keyless_force_tlog_version": "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION",
    "inline_heartbeat_s": "ATTESTOR_INLINE_HEARTBEAT_S",
}

_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def load_settings(environ: Mapping[str, str], config_file: Path | None = None) -> Settings:
    """Build validated settings from ``environ`` and an optional YAML file.

    Args:
        environ: Usually ``os.environ``; only the variables in ``ENV_VARS`` and
            ``ATTESTOR_CONFIG`` are read.
        config_file: YAML file of setting names to values; defaults to the file
            named by ``ATTESTOR_CONFIG``, if any.

    Returns:
        The settings.

    Raises:
        ConfigError: A value is invalid, or the YAML file is unreadable or has
            unknown keys.
    """
    if config_file is None and environ.get("ATTESTOR_CONFIG"):
        config_file = Path(environ["ATTESTOR_CONFIG"])
    raw: dict[str, Any] = _read_yaml(config_file) if config_file is not None else {}
    for name, var in ENV_VARS.items():
        if var in environ:
            raw[name] = environ[var]

    data_dir = _path(raw.get("data_dir", "var"), "data_dir")
    values: dict[str, Any] = {"data_dir": data_dir}
    values["database_url"] = _database_url(
        raw.get("database_url") or f"sqlite:///{data_dir / 'attestor.db'}"
    )
    parsers: dict[str, Callable[[Any, str], Any]] = {
        "redis_url": _redis_url,
        "admin_token": _admin_token,
        "policy_dir": _path,
        "insecure_registries": _host_ports,
        "max_body_bytes": _positive_int,
        "max_bulk_body_bytes": _positive_int,
        "max_bulk_items": _positive_int,
        "bulk_chunk_size": _positive_int,
        "bulk_chunk_timeout_s": _positive_int,
        "signing_key": _signing_key,
        "key_files": _one_of(KEY_FILES),
        "builder_id": _uri,
        "attach_attestations": _bool,
        "registry_credentials_file": _existing_file,
        "max_manifest_bytes": _positive_int,
        "max_config_bytes": _positive_int,
        "registry_blob_hosts": _hosts,
        "registry_auth_hosts": _hosts,
        "registry_request_deadline_s": _positive_int,
        "registry_blob_deadline_floor_s": _positive_int,
        "registry_blob_min_bytes_per_s": _positive_int,
        "registry_blob_deadline_max_s": _positive_int,
        "log_level": _log_level,
        "issue_defer_above_bytes": _positive_int,
        "issue_inline_scan_bytes": _positive_int,
        "layer_max_expansion_ratio": _positive_int,
        "signing_mode": _one_of(SIGNING_MODES),
        "keyless_instance": _one_of(KEYLESS_INSTANCES),
        "keyless_trust_config": _existing_file,
        "keyless_token_file": _path,
        "keyless_token_env": _env_name,
        "keyless_ambient": _bool,
        "keyless_force_tlog_version": _tlog_version,
        "inline_heartbeat_s": _positive_int,
    }
    for name, parse in parsers.items():
        value = raw.get(name)
        if value is None or value == "":
            continue
        values[name] = parse(value, name)
    values.setdefault("builder_id", f"https://attestor.local/builder/{_hostname()}")
    settings = Settings(**values)
    if settings.max_bulk_body_bytes < settings.max_body_bytes:
        raise ConfigError(
            f"max_bulk_body_bytes ({settings.max_bulk_body_bytes}) must be >= "
            f"max_body_bytes ({settings.max_body_bytes})"
        )
    _check_signing_mode(settings)
    return settings


def keyless_config(settings: Settings) -> KeylessConfig:
    """The keyless signer's configuration from validated settings."""
    from attestor.keyless import KeylessConfig

    return KeylessConfig(
        instance=settings.keyless_instance,
        trust_config=settings.keyless_trust_config,
        token_file=settings.keyless_token_file,
        token_env=settings.keyless_token_env,
        ambient_token=settings.keyless_ambient,
        force_tlog_version=settings.keyless_force_tlog_version,
    )


def _check_signing_mode(settings: Settings) -> None:
    keyless_set = [
        name
        for name in (
            "keyless_trust_config",
            "keyless_token_file",
            "keyless_token_env",
            "keyless_force_tlog_version",
        )
        if getattr(settings, name) is not None
    ] + (["keyless_ambient"] if settings.keyless_ambient else [])
    if settings.signing_mode == "key":
        # Fail closed on a half-made switch: keyless options without keyless mode.
        if keyless_set:
            raise ConfigError(
                f"{', '.join(keyless_set)} set but signing_mode is 'key'; "
                "set ATTESTOR_SIGNING_MODE=keyless or remove them"
            )
        if settings.key_files == "external" and settings.signing_key is None:
            # Else the first start would generate the key into one replica's keys_dir.
            raise ConfigError(
                "key_files is 'external' but signing_key is unset; set ATTESTOR_SIGNING_KEY "
                "to a key file every replica mounts"
            )
        return
    if settings.signing_key is not None:
        raise ConfigError("signing_key is set but signing_mode is 'keyless'; choose one")
    # Only the values are checked here. Reading the token and the trust config
    # is I/O, done at start by `attestor serve` and `attestor worker`.
    from attestor.keyless import check_config

    check_config(keyless_config(settings))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping of setting names")
    # Fail closed on typos: an unknown key is an error, not a silent default.
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(str(k) for k in loaded if k not in known)
    if unknown:
        raise ConfigError(f"config file {path} has unknown settings: {', '.join(unknown)}")
    return dict(loaded)


def _hostname() -> str:
    return socket.gethostname() or "localhost"


def _path(value: Any, name: str) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"{name} must be a path, got {value!r}")
    return Path(os.path.abspath(Path(value).expanduser()))


def _existing_file(value: Any, name: str) -> Path:
    path = _path(value, name)
    if not path.is_file():
        raise ConfigError(f"{name}: {path} is not a readable file")
    return path


def _database_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"DATABASE_URL must be a string, got {type(value).__name__}")
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {value!r}") from e
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend in {"postgresql", "postgres"}:
        # psycopg 3 is the one PostgreSQL driver we ship; plain postgresql:// means it.
        if url.drivername not in {"postgresql", "postgres", "postgresql+psycopg"}:
            raise ConfigError(
                f"DATABASE_URL driver {url.drivername!r} is not supported; "
                "use postgresql+psycopg://"
            )
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        if driver != "pysqlite":
            raise ConfigError(f"DATABASE_URL driver {url.drivername!r} is not supported")
    else:
        raise ConfigError(
            f"DATABASE_URL backend {backend!r} is not supported; use postgresql or sqlite"
        )
    return url.render_as_string(hide_password=False)


def _redis_url(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
        raise ConfigError(f"REDIS_URL must be redis://, rediss:// or unix://, got {value!r}")
    return value


def _admin_token(value: Any, name: str) -> str:
    # The value itself is a secret: the message never repeats it.
    if not isinstance(value, str) or len(value) < 16:
        raise ConfigError("ATTESTOR_ADMIN_TOKEN must be at least 16 characters")
    if any(c.isspace() for c in value):
        raise ConfigError("ATTESTOR_ADMIN_TOKEN must not contain whitespace")
    return value


def _host_ports(value: Any, name: str) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be a comma list of host:port")
    result: set[str] = set()
    for item in items:
        hp = str(item).strip()
        if not hp:
            continue
        host, sep, port = hp.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: {hp!r} is not host:port")
        result.add(hp.lower())
    return frozenset(result)


def _hosts(value: Any, name: str) -> frozenset[str]:
    """A comma list of host or host:port (no scheme, path or credentials)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be a comma list of host[:port]")
    result: set[str] = set()
    for item in items:
        text = str(item).strip().lower()
        if not text:
            continue
        parts = urlsplit(f"//{text}")
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if not parts.hostname or not port_ok or parts.netloc != text or "@" in text:
            raise ConfigError(f"{name}: {text!r} is not host[:port]")
        result.add(text)
    return frozenset(result)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        n = int(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}") from e
    if n <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {n}")
    return n


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _signing_key(value: Any, name: str) -> str:
    if not isinstance(value, str) or "://" not in value and not value.startswith("file:"):
        raise ConfigError(f"{name} must be a signer URI such as file:///path/key.pem")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(value: Any, name: str) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _env_name(value: Any, name: str) -> str:
    text = str(value)
    if not text.replace("_", "a").isalnum() or text[0].isdigit():
        raise ConfigError(f"{name} must be an environment variable name, got {value!r}")
    return text


def _tlog_version(value: Any, name: str) -> int:
    n = _positive_int(value, name)
    if n not in (1, 2):
        raise ConfigError(f"{name} must be 1 or 2, got {n}")
    return n


def _uri(value: Any, name: str) -> str:
    parts = urlsplit(str(value))
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ConfigError(f"{name} must be an absolute URI, got {value!r}")
    return str(value)


def _log_level(value: Any, name: str) -> str:
    level = str(value).upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(sorted(_LOG_LEVELS))}")
    return level
