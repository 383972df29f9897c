# SPDX-License-Identifier: Apache-2.0
"""The daemon's inotify watch on real containerd: a change is reported well before the interval.

The sweep interval is 30 s and no containerd event follows a host write, so
a violation within a couple of seconds can only come from the watch. The
server is the simulator of ``tests/unit/agent/_integrity_sim.py`` (real keys,
real signed statements); the last test runs ``attestor-agent run`` against
the real server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.config import AgentConfig
from agent.containerd.types import TaskStatus
from agent.daemon import Daemon
from agent.integrity.inventory import list_tracked
from agent.integrity.watch import Watcher
from agent.report import IntegrityCheck
from agent.server import report_sender, violation_sender
from agent.spool import Backoff, Spool
from tests.harness.images import BuiltImage
from tests.integration.agent._integrity_node import Node, attested_manifests, node, sample_tar
from tests.integration.agent.test_responses import LiveServer, live
from tests.unit.agent._integrity_sim import SimLayer, SimServer

__all__ = ["live", "node", "sample_tar"]  # fixtures used here

pytestmark = pytest.mark.timeout(180)

INTERVAL = 30.0
#: What "immediately" must mean here (a debounce + one sweep + one POST).
WITHIN = 2.0


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``predicate`` held."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def sim(sample_built_image: BuiltImage) -> SimServer:
    server = SimServer()
    manifests = attested_manifests(sample_built_image)
    layers = [
        SimLayer(x.digest, x.diff_id, x.media_type, manifests[x.digest])
        for x in sample_built_image.layers
    ]
    server.attest(
        layers, image="integrity/sample", manifest_digest=sample_built_image.manifest_digest
    )
    return server


@pytest.fixture
def running(node: Node, sim: SimServer, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start ``Daemon.run`` in a thread (interval 30 s); stop it afterwards."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    spools: list[Spool] = []

    def start(**overrides: object) -> Daemon:
        config = AgentConfig(
            containerd_address=node.containerd.address,
            namespaces=(node.namespace,),
            state_dir=tmp_path / "state",
            server="http://127.0.0.1:1",
            token="t",
            interval=INTERVAL,
            heartbeat_interval=3600,
            **overrides,  # type: ignore[arg-type]
        )
        violations = Spool.open(config.spool_dir)
        reports = Spool.open(config.report_spool_dir)
        spools.extend([violations, reports])
        daemon = Daemon(
            config,
            server=sim,
            clients=[node.client],
            violations=violations,
            reports=reports,
            violation_sender=violation_sender(sim),  # type: ignore[arg-type]
            report_sender=report_sender(sim),  # type: ignore[arg-type]
            backoff=Backoff(initial=0.01, maximum=0.01, jitter=0),
        )
        thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
        return daemon

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    for spool in spools:
        spool.close()


def watcher(daemon: Daemon) -> Watcher:
    assert daemon.watch is not None and daemon.watch.watcher is not None
    return daemon.watch.watcher


def watching(daemon: Daemon, roots: int) -> Callable[[], bool]:
    """The first sweep is done and its directories are watched."""
    return lambda: daemon.watch is not None and watcher(daemon).status().roots == roots


def found(sim: SimServer) -> set[tuple[str | None, str | None, str]]:
    return {(v["container_id"], v["path"], v["kind"]) for v in sim.violations.values()}


def test_a_host_tamper_of_a_lower_layer_is_reported_at_once(
    node: Node, sim: SimServer, running: Callable[..., Daemon]
) -> None:
    cid = node.run()
    daemon = running()
    wait_for(watching(daemon, roots=5), timeout=30)  # 4 attested layers + the upperdir
    assert sim.violations == {}
    status = watcher(daemon).status()
    assert status.degraded == {} and status.watches > 5  # subdirectories too
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    started = time.monotonic()
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    wait_for(lambda: len(sim.violations) == 1, timeout=INTERVAL / 2)
    elapsed = time.monotonic() - started
    assert found(sim) == {(cid, "etc/hostname", "content")}
    (got,) = sim.violations.values()
    assert got["layer_digest"] == base.digest
    assert elapsed < WITHIN, f"{elapsed:.2f} s: the watch did not trigger (interval {INTERVAL} s)"


def test_drift_inside_the_container_is_reported_at_once(
    node: Node, sim: SimServer, running: Callable[..., Daemon]
) -> None:
    cid = node.run()
    daemon = running()
    wait_for(watching(daemon, roots=5), timeout=30)
    node.exec(cid, "echo '#!/bin/sh' > /planted && chmod 755 /planted")
    elapsed = wait_for(lambda: bool(sim.violations), timeout=INTERVAL / 2)
    assert found(sim) == {(cid, "planted", "drift-new-executable")}
    assert elapsed < WITHIN, f"{elapsed:.2f} s: the watch did not trigger (interval {INTERVAL} s)"


def test_a_watch_triggered_sweep_rechecks_only_what_changed(
    node: Node, sim: SimServer, running: Callable[..., Daemon]
) -> None:
    # A host write into one container's upperdir raises no containerd event:
    # the sweep it triggers is partial. It re-checks that upperdir only; the
    # other container and every lower layer are left as the last full sweep saw them.
    first, second = node.run(), node.run()
    daemon = running()
    wait_for(watching(daemon, roots=6), timeout=30)
    tracked, _ = list_tracked(node.client)
    upper = {c.id: c.upperdir for c in tracked}[first]
    assert upper is not None

    def history(cid: str) -> list[IntegrityCheck]:
        entry = daemon.ledger.get(node.namespace, cid)
        assert entry is not None
        return list(entry.history)

    seen = {cid: len(history(cid)) for cid in (first, second)}
    (upper / "planted").write_bytes(b"#!/bin/sh\n")
    os.chmod(upper / "planted", 0o755)  # noqa: S103 - the drift under test
    wait_for(lambda: bool(sim.violations), timeout=INTERVAL / 2)
    assert found(sim) == {(first, "planted", "drift-new-executable")}
    time.sleep(0.5)  # any later watch-triggered sweep of the same burst
    added = history(first)[seen[first] :]
    assert added and {c.scope for c in added} == {"upperdir"}
    assert len(history(second)) == seen[second]


def test_a_removed_container_is_no_longer_watched(
    node: Node, sim: SimServer, running: Callable[..., Daemon]
) -> None:
    first, second = node.run(), node.run()
    daemon = running()
    wait_for(watching(daemon, roots=6), timeout=30)  # shared layers once, two upperdirs
    node.ctr("tasks", "kill", "-s", "SIGKILL", second)
    wait_for(lambda: node.client.get_task(second).status is TaskStatus.STOPPED)
    # The task exit is a containerd event: the sweep finalizes it and the
    # watch drops its upperdir (the shared layers stay, the first container runs).
    wait_for(watching(daemon, roots=5), timeout=10)
    wait_for(lambda: any(r["finalized"] for r in sim.reports), timeout=10)
    assert {r["container_id"] for r in sim.reports if r["finalized"]} == {second}
    assert first in {r["container_id"] for r in sim.reports}


def test_no_watch_leaves_the_interval_alone(
    node: Node, sim: SimServer, running: Callable[..., Daemon]
) -> None:
    node.run()
    daemon = running(watch=False)
    wait_for(lambda: sim.heartbeats == 1, timeout=30)
    assert daemon.watch is not None and daemon.watch.watcher is None
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    time.sleep(WITHIN + 1)
    assert sim.violations == {}  # only the next sweep, 30 s away, would see it


def _sweep_logs(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines() if log.exists() else []
    docs = [json.loads(x) for x in lines if x.startswith("{")]
    return [d for d in docs if d.get("message") == "sweep"]


def test_the_agent_process_reports_to_the_real_server_at_once(
    node: Node, live: tuple[LiveServer, str, str], sample_image: Any, tmp_path: Path
) -> None:
    server, token, admin = live
    url = f"http://127.0.0.1:{server.port}"
    node.ctr("images", "pull", "--plain-http", sample_image.by_tag)
    node.image = sample_image.by_tag
    cid = node.run()
    (tmp_path / "token").write_text(token + "\n")
    log = tmp_path / "agent.log"
    agent_cli = str(Path(sys.executable).with_name("attestor-agent"))
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [agent_cli, "run", "--containerd-address", node.containerd.address,
             "--namespace", node.namespace, "--server", url,
             "--token-file", str(tmp_path / "token"), "--state-dir", str(tmp_path / "state"),
             "--interval", str(INTERVAL)],  # --watch: the default in node mode
            stderr=stderr,
        )  # fmt: skip
    try:
        # The first sweep asks the server to attest the layers, then watches them.
        wait_for(lambda: any(d.get("watched") == 5 for d in _sweep_logs(log)), timeout=90)
        assert _sweep_logs(log)[-1]["watch_degraded"] == 0
        base = node.layers()[0]
        assert base.snapshot_dir is not None
        bearer = {"Authorization": f"Bearer {admin}"}

        def listed() -> list[dict[str, Any]]:
            resp = requests.get(url + "/v1/violations", headers=bearer, timeout=10)
            resp.raise_for_status()
            items: list[dict[str, Any]] = resp.json()["items"]
            return items

        assert listed() == []
        started = time.monotonic()
        (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
        elapsed = wait_for(lambda: bool(listed()), timeout=INTERVAL / 2)
        (got,) = listed()
        assert (got["container_id"], got["layer_digest"], got["path"], got["kind"]) == (
            cid, base.digest, "etc/hostname", "content",
        )  # fmt: skip
        assert time.monotonic() - started < WITHIN, f"{elapsed:.2f} s (interval {INTERVAL} s)"
        assert any(d.get("changed") == 1 and d.get("scope") == "partial" for d in _sweep_logs(log))
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
