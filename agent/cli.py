# SPDX-License-Identifier: Apache-2.0
"""``attestor-agent`` console script: ``run`` (daemon) and ``check --once``.

Exit codes (issue 5, item 7): 0 clean, 1 violations found, 2 error. Both
commands are placeholders for now and exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["main"]

EXIT_CLEAN = 0
EXIT_VIOLATIONS = 1
EXIT_ERROR = 2

_F = TypeVar("_F", bound=Callable[..., Any])


def _common_options(func: _F) -> _F:
    """The flags ``run`` and ``check`` share."""
    options = [
        click.option(
            "--containerd-address",
            default="/run/containerd/containerd.sock",
            show_default=True,
            envvar="ATTESTOR_AGENT_CONTAINERD_ADDRESS",
            help="containerd gRPC socket.",
        ),
        click.option(
            "--namespace",
            "namespaces",
            multiple=True,
            default=("k8s.io",),
            show_default=True,
            envvar="ATTESTOR_AGENT_NAMESPACE",
            help="containerd namespace to cover (repeatable).",
        ),
        click.option("--server", envvar="ATTESTOR_AGENT_SERVER", help="attestor server URL."),
        click.option("--token", envvar="ATTESTOR_AGENT_TOKEN", help="agent token."),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_STATE_DIR",
            help="cache and spool directory.",
        ),
        click.option(
            "--interval",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="seconds between reconciliation sweeps.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def main() -> None:
    """Verify at runtime that container layers match their attestations."""


@main.command()
@_common_options
def run(**_: object) -> None:
    """Run the agent daemon."""
    click.echo("attestor-agent run: not implemented yet", err=True)
    raise SystemExit(EXIT_ERROR)


@main.command()
@_common_options
@click.option("--once", is_flag=True, help="do one full sweep and print a JSON report.")
def check(**_: object) -> None:
    """Check every covered container once."""
    click.echo("attestor-agent check: not implemented yet", err=True)
    raise SystemExit(EXIT_ERROR)
