# SPDX-License-Identifier: Apache-2.0
"""Pinned server keys on real containerd and the real server (werkzeug on 127.0.0.1).

A key rotation reaches a daemon that runs with ``--response kill`` without a
restart and kills nothing; a server that hands the agent other keys (another
database, a substituted key table) is refused, and its attestations stay
``bad-signature``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.check import feed_follower
from agent.config import AgentConfig
from agent.containerd.types import TaskStatus
from agent.daemon import Daemon
from agent.server import ServerClient, report_sender, violation_sender
from agent.spool import Backoff, Spool
from agent.trust import KeyPins
from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.signing.keys import public_key_info
from attestor.store import signing_keys as key_store
from attestor.store import tokens as token_store
from tests.conftest import REPO_ROOT
from tests.harness.binaries import require_static
from tests.harness.images import ImageBuilder, PushedImage, RawLayer
from tests.harness.layers import Entry
from tests.harness.sample import sample_layers
from tests.integration.agent._integrity_node import Node, node, sample_tar
from tests.integration.agent.test_responses import LiveServer

__all__ = ["node", "sample_tar"]  # fixtures used here


class Servers:
    """Real servers, each with its own database and keys; stopped at the end."""

    def __init__(self, tmp_path: Path, registry: Any) -> None:
        self._tmp = tmp_path
        self._registry = registry
        self._started: list[LiveServer] = []
        #: The app state of each server, by URL.
        self.states: dict[str, Any] = {}

    def start(self, name: str) -> tuple[str, str, str]:
        """Start one: (url, agent token, admin token)."""
        policies = self._tmp / name / "policies"
        policies.mkdir(parents=True)
        shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
        settings = load_settings(
            {
                "ATTESTOR_DATA_DIR": str(self._tmp / name / "var"),
                "ATTESTOR_INSECURE_REGISTRIES": self._registry.host,
                "ATTESTOR_POLICY_DIR": str(policies),
            }
        )
        app = create_app(settings, overrides={"TESTING": True})
        state = app_state(app)
        with state.session_factory.begin() as s:
            agent, _ = token_store.create_token(
                s, role="agent", agent_id="node-1", now=state.clock()
            )
            admin, _ = token_store.create_token(s, role="admin", now=state.clock())
        server = LiveServer(app)
        url = server.start()
        self._started.append(server)
        self.states[url] = state
        return url, agent, admin

    def stop(self) -> None:
        for server in self._started:
            server.stop()
        for state in self.states.values():
            state.engine.dispose()


@pytest.fixture
def servers(tmp_path: Path, registry: Any) -> Iterator[Servers]:
    started = Servers(tmp_path, registry)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def rotated_image(image_builder: ImageBuilder, registry: Any) -> PushedImage:
    """The sample image plus a layer of its own: first attested after the rotation."""
    layers = [
        *sample_layers(require_static("busybox")),
        RawLayer((Entry("etc/rotated", data=b"attested with the new key\n"),)),
    ]
    built = image_builder.build(layers, name="keypin", cmd=["/bin/sh"])
    return image_builder.push(built, registry, "keypin/rotated")


@contextmanager
def daemon_for(
    node: Node, url: str, token: str, state_dir: Path, **config: Any
) -> Iterator[Daemon]:
    client = ServerClient(url, token, timeout=30)
    settings = AgentConfig(containerd_address=node.containerd.address,
                           namespaces=(node.namespace,), state_dir=state_dir, server=url,
                           token=token, **config)  # fmt: skip
    with Spool.open(settings.spool_dir) as violations, Spool.open(settings.report_spool_dir) as r:
        yield Daemon(settings, server=client, clients=[node.client], violations=violations,
                     reports=r, violation_sender=violation_sender(client),
                     report_sender=report_sender(client),
                     backoff=Backoff(initial=0.01, maximum=0.01, jitter=0),
                     revocations=feed_follower(client, settings),
                     pins=settings.key_pins())  # fmt: skip
    client.close()


def _violations(url: str, admin: str) -> list[dict[str, Any]]:
    resp = requests.get(url + "/v1/violations", headers={"Authorization": f"Bearer {admin}"},
                        timeout=30)  # fmt: skip
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def test_a_rotation_while_the_agent_runs_with_kill_kills_nothing(
    node: Node,
    servers: Servers,
    sample_image: PushedImage,
    rotated_image: PushedImage,
    tmp_path: Path,
) -> None:
    url, token, admin = servers.start("one")
    node.ctr("images", "pull", "--plain-http", sample_image.by_tag)
    node.image = sample_image.by_tag
    first = node.run()
    with daemon_for(node, url, token, tmp_path / "state", response="kill",
                    heartbeat_interval=3600) as daemon:  # fmt: skip
        daemon.register()
        assert daemon.pins.pins is not None and daemon.pins.pins.version == 1
        (old_keyid,) = daemon.pins.keyids()
        clean = daemon.sweep_once()  # the server issues the sample's attestations (old key)
        assert clean.violations == ()
        assert {x.attestation.keyid for x in clean.containers[0].layers} == {old_keyid}

        bearer = {"Authorization": f"Bearer {admin}"}
        resp = requests.post(url + "/v1/keys/rotate", json={}, headers=bearer, timeout=30)
        assert resp.status_code == 201, resp.text
        new_keyid = resp.json()["keyid"]

        # A container of an image first attested now: its own layer is signed by
        # the new key, which the daemon has not polled yet (no heartbeat since).
        node.ctr("images", "pull", "--plain-http", rotated_image.by_tag)
        node.image = rotated_image.by_tag
        second = node.run()
        after = daemon.sweep_once()
        assert after.violations == ()
        by_id = {c.container.id: c for c in after.containers}
        statuses = [(x.attestation.status, x.attestation.keyid) for x in by_id[second].layers]
        assert [s for s, _ in statuses] == ["valid"] * 5
        assert statuses[-1][1] == new_keyid
        assert daemon.pins.keyids() == {old_keyid, new_keyid}
        assert daemon.pins.pins.version == 3 and daemon.key_anomaly is None
        time.sleep(0.5)  # a kill would have stopped a task by now
        for cid in (first, second):
            assert node.client.get_task(cid).status is TaskStatus.RUNNING
        daemon.deliver_now()
    assert _violations(url, admin) == []
    # The pins were saved: a restart starts from the rotated set.
    restarted = KeyPins(tmp_path / "state")
    assert restarted.pins is not None and restarted.keyids() == {old_keyid, new_keyid}


def test_the_run_loop_follows_a_rotation_with_its_heartbeat(
    node: Node, servers: Servers, tmp_path: Path
) -> None:
    url, token, admin = servers.start("loop")
    with daemon_for(node, url, token, tmp_path / "state", response="kill",
                    heartbeat_interval=0.2, interval=3600) as daemon:  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while daemon.pins.pins is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert daemon.pins.pins is not None and daemon.pins.pins.version == 1
            resp = requests.post(url + "/v1/keys/rotate", json={}, timeout=30,
                                 headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
            assert resp.status_code == 201, resp.text
            new_keyid = resp.json()["keyid"]
            while new_keyid not in daemon.pins.keyids() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert new_keyid in daemon.pins.keyids()  # no restart, no register again
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_server_with_other_keys_is_refused_and_its_attestations_stay_bad(
    node: Node,
    servers: Servers,
    sample_image: PushedImage,
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    url, token, _ = servers.start("genuine")
    with daemon_for(node, url, token, state) as daemon:
        daemon.register()
        pinned = daemon.pins.pins
    assert pinned is not None
    # Same agent, same state directory, another server: its database and key
    # table are not the ones the agent pinned (a restored, replaced or forged server).
    other_url, other_token, _ = servers.start("impostor")
    node.ctr("images", "pull", "--plain-http", sample_image.by_tag)
    node.image = sample_image.by_tag
    cid = node.run()
    with daemon_for(node, other_url, other_token, state) as daemon:
        daemon.register()
        assert daemon.pins.pins == pinned
        assert daemon.key_anomaly is not None and "key set refused" in daemon.key_anomaly
        result = daemon.sweep_once()  # the impostor issues attestations with its own key
    statuses = {x.attestation.status for x in result.containers[0].layers}
    assert statuses == {"bad-signature"}
    assert {v.kind for v in result.violations} == {"bad-signature"}
    assert {v.container_id for v in result.violations} == {cid}
    assert KeyPins(state).pins == pinned


def test_a_key_written_into_the_server_database_without_its_private_key_is_refused(
    node: Node, servers: Servers, tmp_path: Path
) -> None:
    url, token, admin = servers.start("db")
    with daemon_for(node, url, token, tmp_path / "state") as daemon:
        daemon.register()
        before = daemon.pins.pins
        assert before is not None
        # Someone with write access to the database only: a key row whose
        # private key the server cannot load. The active key still signs the set.
        intruder = ec.generate_private_key(ec.SECP256R1())
        info = public_key_info(
            intruder.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        state = servers.states[url]
        with state.session_factory.begin() as session:
            key_store.add_key(session, keyid=info.keyid, algorithm=info.algorithm,
                              public_key_pem=info.public_key_pem,
                              signer_uri="file:///nonexistent/intruder.pem", status="retired",
                              now=state.clock())  # fmt: skip
        assert daemon.poll_keys() is False
        assert daemon.key_anomaly is not None
        assert "did not sign the set that adds it" in daemon.key_anomaly
        assert daemon.pins.pins == before and info.keyid not in daemon.pins.keyids()
        # The server learns of the refusal through the spool, not only the log.
        assert daemon.deliver_now()[0].delivered == 1
        assert daemon.poll_keys() is False  # refused again: not reported again
        assert len(daemon.violations) == 0
    (anomaly,) = _violations(url, admin)
    assert anomaly["kind"] == "trust-anomaly" and anomaly["agent_id"] == "node-1"
    assert (anomaly["container_id"], anomaly["image_digest"], anomaly["path"]) == (None,) * 3
    assert anomaly["detail"]["source"] == "key-set"
    assert "did not sign the set that adds it" in anomaly["detail"]["reason"]
