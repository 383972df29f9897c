# SPDX-License-Identifier: Apache-2.0
"""The ``attestor-agent`` entry point: its flags, and the Kubernetes manifests that use them."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import main
from tests.conftest import REPO_ROOT


def test_help_lists_both_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "check" in result.output


def test_unknown_flag_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["check", "--bogus"]).exit_code == 2


@pytest.mark.parametrize("name", ["agent-daemonset.yaml", "agent-sidecar-pod.yaml"])
def test_kubernetes_args_are_flags_of_the_real_cli(name: str) -> None:
    docs = list(yaml.safe_load_all((REPO_ROOT / "docker" / "k8s" / name).read_text()))
    (pod,) = [d for d in docs if d["kind"] in ("DaemonSet", "Pod")]
    spec = pod["spec"]["template"]["spec"] if pod["kind"] == "DaemonSet" else pod["spec"]
    (agent,) = [c for c in spec.get("initContainers", []) + spec["containers"]
                if "agent" in c["image"]]  # fmt: skip
    args = [a.replace("$(POD_UID)", "0f0e0d0c-pod") for a in agent["args"]]
    assert args[0] == "run" and "--token" not in args and "--token-file" in args
    ctx = main.commands["run"].make_context("run", args[1:])
    mounts = {m["mountPath"] for m in agent["volumeMounts"]}
    assert ctx.params["token_file"].parent.as_posix() in mounts
    assert ctx.params["state_dir"].as_posix() in mounts
    mode = "node" if pod["kind"] == "DaemonSet" else "sidecar"
    assert ctx.params["mode"] == mode
    if mode == "sidecar":
        assert ctx.params["pod_uid"] == "0f0e0d0c-pod"
