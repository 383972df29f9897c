# SPDX-License-Identifier: Apache-2.0
"""``attestor serve``: the API under gunicorn (never Flask's development server)."""

from __future__ import annotations

from typing import Any

import click
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from attestor.cli._common import now, settings_from_env

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
def command(host: str, port: int, workers: int, threads: int) -> None:
    """Start the API server."""
    from attestor.api.observability import configure_logging
    from attestor.store.bootstrap import prepare
    from attestor.store.db import make_engine

    settings = settings_from_env()
    configure_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    prepared = prepare(settings, engine, now=now())
    engine.dispose()
    # A bad policy file must stop the start here (one line, exit 2), not in a worker.
    from attestor.policy import load_policies

    load_policies(settings.policy_dir)
    url = f"http://{host}:{port}"
    click.echo(f"attestor serving on {url} (docs {url}/docs)", err=True)
    if prepared.first_admin_token is not None:
        click.echo("created the first admin token; it is shown only once:", err=True)
        click.echo(prepared.first_admin_token)
    _Gunicorn(
        {
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
    ).run()


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
