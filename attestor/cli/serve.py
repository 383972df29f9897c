# SPDX-License-Identifier: Apache-2.0
"""``attestor serve``: the API under gunicorn (never Flask's development server)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import click
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from attestor.cli._common import now, settings_from_env
from attestor.cli._startup import check_start_up
from attestor.errors import ConfigError

__all__ = ["command"]


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn run programmatically with an app factory."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from attestor.api.app import PREPARED_KEY, create_app

        # Start-up already ran once in the master; workers must not race on it.
        return create_app(settings_from_env(), overrides={PREPARED_KEY: True})


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(0, 64), help="gunicorn workers"
)
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--certfile",
    envvar="ATTESTOR_TLS_CERT",
    type=click.Path(path_type=Path),
    help="PEM certificate chain: serve HTTPS (needs --keyfile).",
)
@click.option(
    "--keyfile",
    envvar="ATTESTOR_TLS_KEY",
    type=click.Path(path_type=Path),
    help="PEM private key (unencrypted) of --certfile.",
)
def command(
    host: str,
    port: int,
    workers: int,
    threads: int,
    certfile: Path | None,
    keyfile: Path | None,
) -> None:
    """Start the API server.

    Raises:
        ConfigError: only one of --certfile/--keyfile, or they cannot be loaded.
    """
    from attestor.logs import configure_logging
    from attestor.store.bootstrap import prepare
    from attestor.store.db import make_engine

    tls = _check_tls(certfile, keyfile)
    settings = settings_from_env()
    check_start_up(settings, os.environ)
    configure_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    prepared = prepare(settings, engine, now=now())
    engine.dispose()
    # Policy files go into the database once, before the workers start (like
    # kubectl apply); a bad file stops the start here (one line, exit 2).
    from attestor.services.policy_import import import_directory
    from attestor.store.db import make_session_factory

    engine = make_engine(settings.database_url)
    try:
        import_directory(make_session_factory(engine), settings.policy_dir, now=now())
    finally:
        engine.dispose()
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    click.echo(f"attestor serving on {url} (docs {url}/docs)", err=True)
    if prepared.first_admin_token is not None:
        click.echo("created the first admin token; it is shown only once:", err=True)
        click.echo(prepared.first_admin_token)
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        # 0 and 1 both mean one worker process: there is no dev server.
        "workers": max(workers, 1),
        "worker_class": "gthread",
        "threads": threads,
        # Our own access log (attestor.access) has the request ids; gunicorn's is off.
        "accesslog": None,
        "errorlog": "-",
        "logconfig_dict": _json_logging(settings.log_level),
        "timeout": 120,
        "graceful_timeout": 10,
        # One control socket per user would clash between servers; we do not use it.
        "control_socket_disable": True,
    }
    if tls is not None:
        options["certfile"], options["keyfile"] = str(tls[0]), str(tls[1])
    _Gunicorn(options).run()


def _check_tls(certfile: Path | None, keyfile: Path | None) -> tuple[Path, Path] | None:
    """Both TLS files or neither; load them once so a bad pair stops the start here.

    Raises:
        ConfigError: only one file given, or the pair cannot be loaded.
    """
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError("--certfile and --keyfile go together: give both or neither")
    for path in (certfile, keyfile):
        # ssl's own error on a missing file does not always say which one.
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise ConfigError(f"cannot read TLS file {path}: {e.strerror}") from e
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # A password callback that gives nothing: an encrypted key fails instead of prompting.
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except ssl.SSLError as e:
        # OpenSSL often says no more than "PEM lib": not PEM, wrong key, or encrypted.
        detail = e.reason or e.strerror or str(e)
        raise ConfigError(f"cannot load TLS pair {certfile} / {keyfile}: {detail}") from e
    except OSError as e:  # the files changed between the two reads
        raise ConfigError(f"cannot read TLS files {certfile} / {keyfile}: {e.strerror}") from e
    return certfile, keyfile


def _json_logging(level: str) -> dict[str, Any]:
    """gunicorn logging config: every record (gunicorn's too) as one JSON line on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "attestor.api.observability.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
