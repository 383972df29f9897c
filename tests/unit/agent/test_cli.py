# SPDX-License-Identifier: Apache-2.0
"""The ``attestor-agent`` entry point: parses its flags, placeholders exit 2."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli import main


def test_help_lists_both_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "check" in result.output


def test_unknown_flag_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["check", "--bogus"]).exit_code == 2
