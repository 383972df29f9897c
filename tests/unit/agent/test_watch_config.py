# SPDX-License-Identifier: Apache-2.0
"""``--watch/--no-watch``, ``ATTESTOR_AGENT_WATCH`` and the mode's default."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent._daemon_loop import WatchHook
from agent.cli import _config, main
from agent.config import AgentConfig
from agent.containerd import LayerInfo
from agent.integrity.attestation import LayerAttestation
from agent.integrity.inventory import TrackedContainer
from agent.integrity.layers import LayerCheck
from agent.integrity.sweep import ContainerResult, LayerResult, SweepResult, UpperCheck
from agent.integrity.watch import watched_dirs
from attestor.digests import Digest
from attestor.errors import ConfigError
from attestor.manifest import FileManifest

D = Digest("sha256:" + "d" * 64)


def config(**kw: object) -> AgentConfig:
    return AgentConfig(containerd_address="/x.sock", namespaces=("k8s.io",),
                       state_dir=Path("/tmp/s"), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_watch_is_on_in_node_mode_and_off_in_sidecar_mode_by_default() -> None:
    assert config().watch is True
    assert config(mode="sidecar", pod_uid="p").watch is False
    assert config(mode="sidecar", pod_uid="p", watch=True).watch is True
    assert config(watch=False).watch is False
    with pytest.raises(ConfigError, match="watch_max_watches"):
        config(watch_max_watches=0)


@pytest.mark.parametrize(
    ("argv", "env", "want"),
    [
        ([], None, True),
        (["--no-watch"], None, False),
        (["--mode", "sidecar", "--pod-uid", "p"], None, False),
        (["--mode", "sidecar", "--pod-uid", "p", "--watch"], None, True),
        ([], "false", False),
        (["--mode", "sidecar", "--pod-uid", "p"], "1", True),
    ],
)
def test_flag_and_env_reach_the_config(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, want: bool
) -> None:
    if env is not None:
        monkeypatch.setenv("ATTESTOR_AGENT_WATCH", env)
    ctx = main.commands["run"].make_context("run", ["--state-dir", "/tmp/s", *argv])
    assert _config(ctx.params).watch is want


def test_max_watches_flag_and_check_has_no_watch_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    run = main.commands["run"].make_context("run", ["--watch-max-watches", "100"])
    assert _config(run.params).watch_max_watches == 100
    check = main.commands["check"].make_context("check", ["--once"])
    assert "watch" not in check.params
    assert _config(check.params).watch_max_watches is None


def test_the_hook_is_inert_when_the_watch_is_off() -> None:
    hook = WatchHook(config(watch=False), threading.Event())
    assert hook.watcher is None
    assert (hook.settled(), hook.begin(full=False), hook.end(None, 1.0)) == (False, (None, 0), {})
    hook.close()


def test_the_hook_reports_its_status_in_the_sweep_log(tmp_path: Path) -> None:
    wake = threading.Event()
    hook = WatchHook(config(watch_max_watches=50), wake)
    try:
        assert hook.watcher is not None
        hook.watcher.sync([tmp_path])
        assert hook.begin(full=False) == (None, 0)  # nothing changed: a full sweep
        assert hook.end(None, 0.01) == {"watched": 1, "watches": 1, "watch_degraded": 0}
        (tmp_path / "new").write_bytes(b"x")
        assert wake.wait(3.0)
        assert hook.settled()
        assert hook.begin(full=False) == ({tmp_path}, 1)  # only the watch asked: partial
        hook.end(None, 0.01)
        wake.clear()
        (tmp_path / "again").write_bytes(b"x")
        assert wake.wait(3.0)
        assert hook.begin(full=True) == (None, 1)  # the interval or containerd asked too
    finally:
        hook.close()


def _container(cid: str, statuses: list[str]) -> ContainerResult:
    """A container whose layer i is ``/s/<i>/fs`` with attestation ``statuses[i]``."""
    upper = Path(f"/s/{cid}/fs")
    results = []
    for i, status in enumerate(statuses):
        snap = Path(f"/s/{i}/fs")
        layer = LayerInfo(i, D, "mt", 1, D, D, snap)
        valid = status == "valid"
        att = LayerAttestation(D, status, manifest=FileManifest(()) if valid else None)  # type: ignore[arg-type]
        check = LayerCheck(snap, (), 0, 0, False) if valid else None
        results.append(LayerResult(layer, att, check))
    container = TrackedContainer(
        "ns", cid, "img:1", D, tuple(r.layer for r in results), upper, None
    )
    return ContainerResult(container, tuple(results), UpperCheck(upper, (), 0, False), (), ())


def test_watched_dirs_are_the_compared_ones() -> None:
    result = SweepResult(
        None,  # type: ignore[arg-type]
        (_container("a", ["valid", "valid"]), _container("b", ["valid", "unattested"])),
        (),
    )
    # b's unattested layer has nothing to compare with, nor has its upperdir.
    assert watched_dirs(result) == {Path("/s/0/fs"), Path("/s/1/fs"), Path("/s/a/fs")}
