# SPDX-License-Identifier: Apache-2.0
"""The ``attestor`` console script. Subcommands are imported only when run."""

from __future__ import annotations

import importlib
from typing import Any

import click

from attestor.cli.usage import OneLineUsage, one_line
from attestor.errors import ConfigError, Error

__all__ = ["cli", "main"]

#: Exit code for invalid configuration or usage.
EXIT_CONFIG = 2
EXIT_ERROR = 1

#: name -> "module:attribute" of a click command, imported only when that command runs.
COMMANDS: dict[str, str] = {
    "serve": "attestor.cli.serve:command",
    "token": "attestor.cli.token:group",
    "admin": "attestor.cli.admin:group",
    "worker": "attestor.cli.worker:command",
    "verify-bundle": "attestor.cli.verify_bundle:command",
    "verify": "attestor.cli.verify:command",
    "policy": "attestor.cli.policy:group",
    "audit": "attestor.cli.audit:group",
}


def _load(name: str) -> click.Command:
    module_name, _, attr = COMMANDS[name].partition(":")
    module = importlib.import_module(module_name)
    command = getattr(module, attr)
    assert isinstance(command, click.Command)  # noqa: S101 - programming error
    return command


class _Failure(click.ClickException):
    """One line on stderr and exit code 1; never a traceback."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"attestor: {self.message}", err=True)


class _ConfigFailure(_Failure):
    exit_code = EXIT_CONFIG


class LazyGroup(OneLineUsage, click.Group):
    """A group whose subcommands are imported on first use (fast ``--help``).

    Usage errors are one line on stderr (exit 2), like every other failure.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return _load(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            raise _ConfigFailure(one_line(f"invalid configuration: {e.message}")) from e
        except Error as e:
            raise _Failure(one_line(f"{type(e).__name__}: {e.message}")) from e


@click.group(cls=LazyGroup)
@click.version_option(package_name="attestor")
def cli() -> None:
    """attestor: layer attestations issued from the registry, verified at runtime."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; configuration errors are one line on stderr and exit code 2."""
    cli.main(args=argv, prog_name="attestor")
