# SPDX-License-Identifier: Apache-2.0
"""The daemon on real containerd: spool and delivery, responses, finalize, events.

Most tests use the simulator of ``tests/unit/agent/_integrity_sim.py`` (real
keys, real signed statements); the last one goes through the real server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from werkzeug.serving import make_server

from agent.check import FollowerFactory, feed_follower
from agent.config import AgentConfig
from agent.containerd.types import TaskStatus
from agent.daemon import Daemon
from agent.integrity.ledger import Ledger
from agent.revocation import FeedFollower
from agent.server import FeedResponse, ServerClient, report_sender, violation_sender
from agent.spool import Backoff, Spool
from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.errors import Unavailable, UpstreamError
from attestor.store import tokens as token_store
from attestor.verify import TrustedKey
from tests.conftest import REPO_ROOT
from tests.harness.images import BuiltImage
from tests.integration.agent._integrity_node import Node, attested_manifests, node, sample_tar
from tests.unit.agent._integrity_sim import SimLayer, SimServer

__all__ = ["node", "sample_tar"]  # fixtures used here


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


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
def make_daemon(node: Node, sim: SimServer, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    opened: list[Spool] = []

    def make(
        revocations: FollowerFactory | None = None,
        ledger: Ledger | None = None,
        wall: Callable[[], datetime] | None = None,
        **overrides: object,
    ) -> Daemon:
        config = AgentConfig(
            containerd_address=node.containerd.address,
            namespaces=(node.namespace,),
            state_dir=tmp_path / "state",
            server="http://127.0.0.1:1",
            token="t",
            **overrides,  # type: ignore[arg-type]
        )
        violations = Spool.open(config.spool_dir)
        reports = Spool.open(config.report_spool_dir)
        opened.extend([violations, reports])
        return Daemon(
            config,
            server=sim,
            clients=[node.client],
            violations=violations,
            reports=reports,
            violation_sender=violation_sender(sim),  # type: ignore[arg-type]
            report_sender=report_sender(sim),  # type: ignore[arg-type]
            backoff=Backoff(initial=0.01, maximum=0.01, jitter=0),
            revocations=revocations,
            ledger=ledger,
            **({} if wall is None else {"wall": wall}),  # type: ignore[arg-type]
        )

    yield make
    for spool in opened:
        spool.close()


def tamper(node: Node) -> str:
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    return base.digest


def test_violation_is_spooled_during_an_outage_and_delivered_exactly_once(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon()
    assert daemon.register() == "agent-1"
    cid = node.run()
    assert daemon.sweep_once().violations == ()
    sim.down = True
    layer = tamper(node)
    assert len(daemon.sweep_once().violations) == 1
    daemon.sweep_once()  # seen again: not spooled again
    assert len(daemon.violations) == 1
    violations, _ = daemon.deliver_now()
    assert violations.error is not None and sim.violations == {}
    sim.down = False
    time.sleep(0.02)  # past the backoff
    violations, _ = daemon.deliver_now()
    assert violations.delivered == 1 and len(daemon.violations) == 0
    (got,) = sim.violations.values()
    assert (got["container_id"], got["layer_digest"], got["path"], got["kind"]) == (
        cid, layer, "etc/hostname", "content",
    )  # fmt: skip
    time.sleep(0.02)
    assert daemon.deliver_now()[0].delivered == 0
    assert len(sim.violations) == 1


def test_a_restarted_daemon_does_not_report_the_same_tamper_again(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    path = tmp_path / "ledger.json"
    first = make_daemon(ledger=Ledger.open(path))
    first.register()
    node.run()
    tamper(node)
    assert len(first.sweep_once().violations) == 1
    assert len(first.violations) == 1
    first.violations.close()  # the process ends: its spool lock goes
    first.reports.close()
    restarted = make_daemon(ledger=Ledger.open(path))  # same state dir, fresh process state
    restarted.register()
    assert len(restarted.sweep_once().violations) == 1  # still there, and seen
    assert len(restarted.violations) == 1  # but not spooled a second time


def test_feed_anomaly_is_reported_and_its_fail_mode_pauses_new_containers(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    def unreachable(since: int, limit: int, etag: str | None) -> FeedResponse:
        raise Unavailable("feed blocked")

    def follower(keys: Sequence[TrustedKey]) -> FeedFollower:
        return FeedFollower(cast(ServerClient, None), keys, tmp_path / "feed",
                            max_age=timedelta(minutes=15), clock=lambda: datetime.now(UTC),
                            fetch=unreachable)  # fmt: skip

    daemon = make_daemon(revocations=follower, revocation_fail_mode="pause")
    daemon.register()
    running = node.run()
    daemon.sweep_once()  # the baseline: containers already running are not "new"
    polled = daemon.poll_revocations()
    assert polled is not None and polled.anomaly is not None
    assert daemon.feed_anomaly is not None and "no verified revocation feed page" in polled.anomaly
    daemon.deliver_now()
    last = sim.reports[-1]
    assert last["history"][-1]["result"] == "error"
    assert last["history"][-1]["error"].startswith("revocation feed: ")
    reports = len(sim.reports)
    assert daemon.poll_revocations().anomaly is not None  # type: ignore[union-attr]
    daemon.deliver_now()
    assert len(sim.reports) == reports  # noted once, when it began
    started = node.run()
    daemon.sweep_once()
    assert node.client.get_task(started).status is TaskStatus.PAUSED
    assert node.client.get_task(running).status is TaskStatus.RUNNING
    node.client.resume(started)


def test_pause_response_pauses_the_task(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(response="pause")
    daemon.register()
    cid = node.run()
    daemon.sweep_once()
    assert node.client.get_task(cid).status is TaskStatus.RUNNING
    tamper(node)
    daemon.sweep_once()
    assert node.client.get_task(cid).status is TaskStatus.PAUSED
    node.client.resume(cid)


def test_kill_response_kills_the_task(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(response="kill")
    daemon.register()
    cid = node.run()
    tamper(node)
    daemon.sweep_once()
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)


def test_kill_response_applies_to_an_unscannable_name_beside_a_tampered_file(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon(response="kill")
    daemon.register()
    cid = node.run()
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    with open(os.path.join(os.fsencode(base.snapshot_dir / "etc"), b"bad\xff"), "wb") as f:
        f.write(b"x")
    layer = tamper(node)
    found = {(v.layer_digest, v.path, v.kind) for v in daemon.sweep_once().violations}
    assert found == {(layer, "etc/hostname", "content"), (layer, "etc/bad\\xff", "unscannable")}
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)
    assert {e.record["kind"] for e in daemon.violations.pending()} == {"content", "unscannable"}


def test_kill_response_applies_to_an_unscannable_upperdir_alone(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon(response="kill")
    daemon.register()
    cid = node.run()
    assert daemon.sweep_once().violations == ()
    # From inside the container: a name the agent cannot represent, and no
    # other drift. Before, this turned the container's drift check off.
    node.exec(cid, "/bin/busybox touch \"/srv/$(/bin/busybox printf 'bad\\377')\"")
    found = {(v.layer_digest, v.path, v.kind) for v in daemon.sweep_once().violations}
    assert found == {(None, "srv/bad\\xff", "unscannable")}
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)


def test_a_layer_pending_past_the_grace_period_is_a_violation_and_killed(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    clock = [datetime(2026, 12, 7, 9, 0, tzinfo=UTC)]
    daemon = make_daemon(response="kill", pending_grace=120, wall=lambda: clock[0])
    daemon.register()
    cid = node.run()
    sim.down = True  # no attestation can be looked up, and none is cached
    assert daemon.sweep_once().violations == ()
    clock[0] += timedelta(seconds=119)
    assert daemon.sweep_once().violations == ()
    assert node.client.get_task(cid).status is TaskStatus.RUNNING
    clock[0] += timedelta(seconds=1)
    late = daemon.sweep_once().violations
    layers = {x.digest for x in node.layers()}
    assert {(v.layer_digest, v.path, v.kind) for v in late} == {
        (d, None, "unverified") for d in layers
    }
    assert all(v.detail["reason"].startswith("no verified attestation for 120 s") for v in late)
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)


def test_a_restarted_daemon_keeps_the_pending_clock(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    # A restart (or a crash loop an attacker provokes) must not restart the
    # grace period: the first sighting of a pending layer is on disk.
    clock = [datetime(2026, 12, 7, 9, 0, tzinfo=UTC)]
    first = make_daemon(response="kill", pending_grace=120, wall=lambda: clock[0])
    first.register()
    cid = node.run()
    sim.down = True
    assert first.sweep_once().violations == ()
    first.violations.close()  # the process ends
    first.reports.close()
    clock[0] += timedelta(seconds=120)
    restarted = make_daemon(response="kill", pending_grace=120, wall=lambda: clock[0])
    sim.down = False  # it registers, but still cannot look attestations up
    restarted.register()
    sim.down = True
    late = restarted.sweep_once().violations
    assert {(v.layer_digest, v.kind) for v in late} == {
        (x.digest, "unverified") for x in node.layers()
    }
    assert all(v.detail["reason"].startswith("no verified attestation for 120 s") for v in late)
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)


def test_a_container_whose_image_is_deleted_is_unverified_and_killed(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon(response="kill")
    daemon.register()
    cid = node.run()
    image_digest = node.client.get_image(node.image).target_digest
    assert daemon.sweep_once().violations == ()
    node.ctr("images", "rm", node.image)
    (v,) = daemon.sweep_once().violations
    # The digest the agent saw it run is named, though containerd lost it.
    assert (v.container_id, v.image_digest, v.kind) == (cid, image_digest, "unverified")
    assert v.detail["reason"].startswith(f"image {node.image} not checked: ")
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)
    daemon.deliver_now()
    (got,) = sim.violations.values()
    assert (got["container_id"], got["kind"], got["image_digest"]) == (
        cid, "unverified", image_digest,
    )  # fmt: skip


def test_a_failed_kill_is_tried_again_at_the_next_sweep(
    node: Node, make_daemon: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = make_daemon(response="kill")
    daemon.register()
    cid = node.run()
    real_kill = node.client.kill
    calls: list[str] = []

    def flaky_kill(container_id: str, *args: Any, **kwargs: Any) -> None:
        calls.append(container_id)
        if len(calls) == 1:  # containerd busy once
            raise UpstreamError("containerd: deadline exceeded")
        real_kill(container_id, *args, **kwargs)

    monkeypatch.setattr(node.client, "kill", flaky_kill)
    tamper(node)
    assert len(daemon.sweep_once().violations) == 1
    assert node.client.get_task(cid).status is TaskStatus.RUNNING  # the kill failed
    daemon.sweep_once()  # nothing new to report, but the kill is owed
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)
    assert calls == [cid, cid]


def test_a_violation_the_spool_refused_is_reported_at_the_next_sweep(
    node: Node, make_daemon: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = make_daemon()
    daemon.register()
    node.run()
    layer = tamper(node)
    real_put = daemon.violations.put
    monkeypatch.setattr(daemon.violations, "put", _fail(Unavailable("spool: disk full")))
    assert len(daemon.sweep_once().violations) == 1
    assert len(daemon.violations) == 0
    monkeypatch.setattr(daemon.violations, "put", real_put)
    daemon.sweep_once()
    (entry,) = daemon.violations.pending()
    assert (entry.record["layer_digest"], entry.record["kind"]) == (layer, "content")
    daemon.sweep_once()  # now reported: not spooled again
    assert len(daemon.violations) == 1


def _fail(error: Exception) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


def test_alert_leaves_the_task_running(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon()
    daemon.register()
    cid = node.run()
    tamper(node)
    assert daemon.sweep_once().violations
    assert node.client.get_task(cid).status is TaskStatus.RUNNING


def test_report_on_change_and_finalized_at_exit(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon()
    daemon.register()
    cid = node.run()
    daemon.sweep_once()
    daemon.sweep_once()  # nothing changed: no second report
    daemon.deliver_now()
    assert [r["finalized"] for r in sim.reports] == [False]
    first = sim.reports[0]
    assert [x["status"] for x in first["layers"]] == ["valid"] * 4
    assert {c["scope"] for c in first["history"]} == {"layer", "upperdir"}
    node.ctr("tasks", "kill", "-s", "SIGKILL", cid)
    wait_for(lambda: node.client.get_task(cid).status is TaskStatus.STOPPED)
    daemon.sweep_once()
    daemon.deliver_now()
    assert [r["finalized"] for r in sim.reports] == [False, True]
    assert sim.reports[1]["container_id"] == cid
    daemon.sweep_once()  # a finalized container is not swept again
    assert daemon.ledger.keys() == frozenset()


def test_run_loop_sweeps_on_a_container_event(
    node: Node, sim: SimServer, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon(interval=3600, heartbeat_interval=3600)
    tamper(node)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: sim.heartbeats == 1)  # registered, first (empty) sweep done
        started = time.monotonic()
        cid = node.run()  # only the containerd events can trigger the next sweep
        wait_for(lambda: len(sim.violations) == 1)
        elapsed = time.monotonic() - started
        (got,) = sim.violations.values()
        assert (got["container_id"], got["path"]) == (cid, "etc/hostname")
        assert elapsed < 5, elapsed
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


# -- through the real server (werkzeug on 127.0.0.1, SQLite, dev policy) -----


class LiveServer:
    """The real app served on a loopback port; stop() and start() keep the port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._srv: Any = None

    def start(self) -> str:
        self._srv = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self._srv.server_port
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()


@pytest.fixture
def live(tmp_path: Path, registry: Any) -> Iterator[tuple[LiveServer, str, str]]:
    """(server, agent token, admin token)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    settings = load_settings(
        {
            "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
        }
    )
    app = create_app(settings, overrides={"TESTING": True})
    state = app_state(app)
    with state.session_factory.begin() as s:
        agent, _ = token_store.create_token(s, role="agent", agent_id="node-1", now=state.clock())
        admin, _ = token_store.create_token(s, role="admin", now=state.clock())
    server = LiveServer(app)
    server.start()
    yield server, agent, admin
    server.stop()
    state.engine.dispose()


def test_end_to_end_through_the_real_server(
    node: Node, live: tuple[LiveServer, str, str], sample_image: Any, tmp_path: Path
) -> None:
    server, token, admin = live
    url = f"http://127.0.0.1:{server.port}"
    node.ctr("images", "pull", "--plain-http", sample_image.by_tag)
    node.image = sample_image.by_tag
    cid = node.run()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    agent_cli = str(Path(sys.executable).with_name("attestor-agent"))
    cli = [agent_cli, "check", "--once", "--containerd-address", node.containerd.address,
           "--namespace", node.namespace, "--server", url,
           "--token-file", str(token_file)]  # fmt: skip
    # The layers were never attested: the agent asks the server, which issues.
    res = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["result"] == "clean" and doc["agent_id"] == "node-1"
    assert [x["status"] for x in doc["containers"][0]["layers"]] == ["valid"] * 4

    client = ServerClient(url, token, timeout=30)
    clock = [0.0]
    config = AgentConfig(containerd_address=node.containerd.address,
                         namespaces=(node.namespace,), state_dir=tmp_path / "state",
                         server=url, token=token)  # fmt: skip
    with Spool.open(config.spool_dir) as violations, Spool.open(config.report_spool_dir) as rep:
        daemon = Daemon(config, server=client, clients=[node.client], violations=violations,
                        reports=rep, violation_sender=violation_sender(client),
                        report_sender=report_sender(client),
                        backoff=Backoff(initial=0.01, maximum=0.01, jitter=0),
                        clock=lambda: clock[0])  # fmt: skip
        daemon.register()
        assert daemon.sweep_once().violations == ()
        server.stop()  # outage: tamper, detect, spool
        layer = tamper(node)
        assert len(daemon.sweep_once().violations) == 1
        assert daemon.deliver_now()[0].error is not None
        server.start()
        clock[0] += 10  # past the client's Retry-After for an unreachable server
        assert daemon.deliver_now()[0].delivered == 1
        clock[0] += 10
        daemon.deliver_now()
        daemon.sweep_once()
    bearer = {"Authorization": f"Bearer {admin}"}
    listed = requests.get(url + "/v1/violations", headers=bearer, timeout=30).json()
    found = [(i["container_id"], i["layer_digest"], i["path"], i["kind"]) for i in listed["items"]]
    assert found == [(cid, layer, "etc/hostname", "content")]  # exactly once
    res = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["violations"][0]["path"] == "etc/hostname"


def test_a_revocation_through_the_server_api_reaches_the_next_sweep(
    node: Node, live: tuple[LiveServer, str, str], sample_image: Any, tmp_path: Path
) -> None:
    server, token, admin = live
    url = f"http://127.0.0.1:{server.port}"
    node.ctr("images", "pull", "--plain-http", sample_image.by_tag)
    node.image = sample_image.by_tag
    cid = node.run()
    client = ServerClient(url, token, timeout=30)
    config = AgentConfig(containerd_address=node.containerd.address,
                         namespaces=(node.namespace,), state_dir=tmp_path / "state",
                         server=url, token=token)  # fmt: skip
    with Spool.open(config.spool_dir) as violations, Spool.open(config.report_spool_dir) as rep:
        daemon = Daemon(config, server=client, clients=[node.client], violations=violations,
                        reports=rep, violation_sender=violation_sender(client),
                        report_sender=report_sender(client),
                        revocations=feed_follower(client, config))  # fmt: skip
        daemon.register()
        first = daemon.poll_revocations()
        assert first is not None and first.anomaly is None
        clean = daemon.sweep_once()  # the server issues the layers' attestations
        assert clean.violations == ()
        layer = clean.containers[0].layers[1]
        assert layer.attestation.status == "valid" and layer.attestation.attestation_id

        bearer = {"Authorization": f"Bearer {admin}"}
        target = {"kind": "attestation", "attestation_id": layer.attestation.attestation_id}
        resp = requests.post(url + "/v1/revocations", headers=bearer, timeout=30,
                             json={"target": target, "reason": "test"})  # fmt: skip
        assert resp.status_code == 201, resp.text
        # Within attestation_refresh the daemon reuses verified results: only
        # the feed can tell it, and the poll applies it at once.
        assert daemon.sweep_once().violations == ()
        polled = daemon.poll_revocations()
        assert polled is not None and polled.changed and polled.anomaly is None
        after = daemon.sweep_once()
    found = [(v.container_id, v.layer_digest, v.kind) for v in after.violations]
    assert found == [(cid, layer.layer.digest, "revoked")]
    statuses = [r.attestation.status for r in after.containers[0].layers]
    assert statuses == ["valid", "revoked", "valid", "valid"]
    # The feed state persisted: a restarted agent starts from the revoked set.
    assert FeedFollower(client, [], config.revocation_dir, max_age=timedelta(minutes=15),
                        clock=lambda: datetime.now(UTC)).revset.version > 0  # fmt: skip
