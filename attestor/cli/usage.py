# SPDX-License-Identifier: Apache-2.0
"""One line on stderr for usage errors, in every CLI (``attestor``, ``attestor-agent``).

click's standalone mode prints a usage block and a "Try --help" line for a bad
flag or command; the project's CLI contract is one line on stderr and a
non-zero exit, so that scripts and log collectors get one record per failure.
"""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["EXIT_USAGE", "OneLineUsage", "one_line"]

#: Exit code of a usage or configuration error.
EXIT_USAGE = 2


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines too) as one space."""
    return " ".join(message.split())


class OneLineUsage:
    """Mixin for a click ``Command`` or ``Group``; set ``label`` to the program name."""

    label = "attestor"

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run, turning click's errors into one stderr line and their exit code."""
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)  # type: ignore[misc]
        except click.exceptions.Exit as e:  # --help, --version
            sys.exit(e.exit_code)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()  # no command at all: the help is the useful answer
            sys.exit(EXIT_USAGE)
        except click.UsageError as e:
            click.echo(f"{self.label}: usage: {one_line(e.format_message())}", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:  # already one line (e.g. attestor's _Failure)
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo(f"{self.label}: aborted", err=True)
            sys.exit(EXIT_USAGE)
