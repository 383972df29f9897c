# SPDX-License-Identifier: Apache-2.0
"""A key rotation reaches the daemon without a restart and never makes a bad signature."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from agent.check import check_once, pinned_verifier
from agent.config import AgentConfig
from agent.daemon import Daemon
from agent.integrity.attestation import ServerAttestations
from agent.server import report_sender, violation_sender
from agent.spool import Spool
from agent.trust import KeyPins
from tests.unit.agent._integrity_sim import T0, SimServer
from tests.unit.agent._key_sets import entry, signed_set
from tests.unit.agent.test_integrity_attestation import Clock, infos, resolve, sim_layers


def rotate(server: SimServer) -> CryptoSigner:
    """Rotate the simulated server's key the way the real server publishes it."""
    old, new = server.signer, CryptoSigner.generate_ecdsa()
    server.key_set_body = signed_set([entry(old, "retired"), entry(new, age=1)], [new, old])
    server.signer = new
    return new


def test_an_attestation_by_an_unknown_key_refreshes_the_keys_before_it_is_judged() -> None:
    server = SimServer()
    pinned = [server.server_key()]
    layers = sim_layers(1)
    rotate(server)
    server.attest(layers)  # signed by the new key, which nothing pinned yet
    calls: list[float] = []
    clock = Clock()
    clock.now = 7.0

    def refresh(since: float) -> bool:
        calls.append(since)
        res.replace_verifier(pinned_verifier([*pinned, server.server_key()]))
        return True

    res = ServerAttestations(server, pinned_verifier(pinned), clock=clock, refresh_keys=refresh)
    got = resolve(res, infos(layers)[0])
    assert got.status == "valid" and got.keyid == server.keyid
    assert calls == [7.0]
    # No refresh, or one that brings no new key: a bad signature, as before.
    for hook in (None, lambda since: False):
        plain = ServerAttestations(server, pinned_verifier(pinned), clock=clock, refresh_keys=hook)
        assert resolve(plain, infos(layers)[0]).status == "bad-signature"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, SimServer]]:
    server = SimServer()
    config = AgentConfig(
        containerd_address="/nonexistent", namespaces=("ns",), state_dir=tmp_path / "state",
        server="http://127.0.0.1:1", token="t", response="kill",
    )  # fmt: skip
    clock = Clock()
    with Spool.open(config.spool_dir) as v, Spool.open(config.report_spool_dir) as r:
        yield Daemon(
            config, server=server, clients=[], violations=v, reports=r,
            violation_sender=violation_sender(server),  # type: ignore[arg-type]
            report_sender=report_sender(server),  # type: ignore[arg-type]
            clock=clock, pins=KeyPins(config.state_dir),
        ), server  # fmt: skip


def test_the_daemon_follows_a_rotation_without_a_restart(
    daemon: tuple[Daemon, SimServer], tmp_path: Path
) -> None:
    agent, server = daemon
    agent.register()
    old = server.keyid
    new = rotate(server)
    assert agent.poll_keys() is True
    assert {k.keyid for k in agent.pins.trusted_keys()} == {old, new.public_key.keyid}
    assert agent.poll_keys() is False  # unchanged
    layers = sim_layers(1)
    server.attest(layers)
    assert agent._attestations is not None  # noqa: SLF001
    got = resolve(agent._attestations, infos(layers)[0])  # noqa: SLF001
    assert got.status == "valid"
    # Persisted: a restarted agent starts from the rotated pins.
    assert KeyPins(tmp_path / "state").pins == agent.pins.pins


def test_the_daemon_refuses_a_substituted_key_set_and_keeps_its_pins(
    daemon: tuple[Daemon, SimServer], caplog: pytest.LogCaptureFixture
) -> None:
    agent, server = daemon
    agent.register()
    before = agent.pins.pins
    attacker = CryptoSigner.generate_ecdsa()
    server.key_set_body = signed_set([entry(attacker)], [attacker], version=50)
    server.signer = attacker
    with caplog.at_level(logging.ERROR, logger="attestor.agent"):
        assert agent.poll_keys() is False
    assert agent.pins.pins == before
    assert agent.key_anomaly is not None and agent.key_anomaly.startswith("key set refused")
    assert any(r.getMessage() == "server key set not accepted" for r in caplog.records)
    # Spooled for the server too (it survives an outage), naming no container.
    (record,) = [e.record for e in agent.violations.pending()]
    assert (record["kind"], record["container_id"], record["image_digest"]) == (
        "trust-anomaly", None, None,
    )  # fmt: skip
    assert record["detail"] == {"source": "key-set", "reason": agent.key_anomaly}
    layers = sim_layers(1)
    server.attest(layers)  # the attacker's attestation
    got = resolve(agent._attestations, infos(layers)[0])  # type: ignore[arg-type]  # noqa: SLF001
    assert got.status == "bad-signature"
    # Re-registration (a restart on the same state dir) does not switch either.
    agent.register()
    assert agent.pins.pins == before and agent.key_anomaly is not None


def test_a_refresh_is_skipped_when_a_poll_began_after_the_envelope(
    daemon: tuple[Daemon, SimServer],
) -> None:
    agent, server = daemon
    agent.register()
    fetches = server.key_set_fetches
    clock = agent._clock  # noqa: SLF001
    assert isinstance(clock, Clock)
    clock.now = 10.0
    agent.poll_keys()  # began at 10
    assert agent.refresh_keys(since=9.0) is False
    assert server.key_set_fetches == fetches + 1  # no second fetch
    rotate(server)
    assert agent.refresh_keys(since=10.0) is True  # not strictly after: fetch again
    assert server.key_set_fetches == fetches + 2


def test_check_once_reports_a_refused_key_set_as_an_error(tmp_path: Path) -> None:
    server = SimServer()
    config = AgentConfig(containerd_address="/nonexistent", namespaces=("ns",),
                         state_dir=tmp_path, server="http://127.0.0.1:1", token="t")  # fmt: skip
    fresh = check_once(config, server=server, containerd=[], now=T0, clock=Clock())
    assert fresh.errors == () and fresh.exit_code == 0  # pinned on first use
    pins = KeyPins(None)
    assert pins.offer(server.key_set()).outcome == "pinned"
    attacker = CryptoSigner.generate_ecdsa()
    server.key_set_body = signed_set([entry(attacker)], [attacker], version=9)
    report = check_once(config, server=server, containerd=[], now=T0, clock=Clock(), pins=pins)
    (error,) = report.errors
    assert error.startswith("key set refused: ") and report.exit_code == 2
    assert pins.keyids() == {server.keyid}
