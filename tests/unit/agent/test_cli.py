# SPDX-License-Identifier: Apache-2.0
"""The ``attestor-agent`` entry point: parses its flags, placeholders exit 2."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli import EXIT_ERROR, main


def test_help_lists_both_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "check" in result.output


def test_run_is_not_implemented_yet() -> None:
    args = ["run", "--containerd-address", "/x.sock", "--namespace", "k8s.io",
            "--server", "http://127.0.0.1:1", "--token", "t", "--state-dir", "/tmp/s",
            "--interval", "5"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_ERROR == 2
    assert "not implemented yet" in result.output


def test_check_once_is_not_implemented_yet() -> None:
    result = CliRunner().invoke(main, ["check", "--once", "--namespace", "a", "--namespace", "b"])
    assert result.exit_code == 2
    assert "not implemented yet" in result.output


def test_unknown_flag_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["check", "--bogus"]).exit_code == 2
