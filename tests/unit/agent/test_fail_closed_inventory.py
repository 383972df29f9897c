# SPDX-License-Identifier: Apache-2.0
"""Fail closed where the agent cannot check a container or keep its clock.

A container that cannot be resolved, a layer with no snapshot directory and
a grace period that a restart would reset are each a finding, never silence.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig
from agent.containerd import LayerInfo
from agent.containerd.types import Container, Image, TaskStatus
from agent.daemon import Daemon
from agent.integrity.drift import UpperChecker
from agent.integrity.inventory import TrackedContainer, list_tracked
from agent.integrity.layers import LayerChecker
from agent.integrity.pending import MAX_PENDING, PENDING_FILE, PendingClock
from agent.integrity.sweep import Sweeper
from agent.report import Violation
from agent.server import report_sender, violation_sender
from agent.spool import Spool
from attestor.digests import Digest
from attestor.errors import ConfigError, InvalidInput, NotFound, UpstreamError
from attestor.manifest import FileManifest
from tests.unit.agent._integrity_sim import SimServer
from tests.unit.agent.test_fail_closed import _Table

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _digest(name: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def _sweeper(table: _Table, **kwargs: object) -> Sweeper:
    return Sweeper(attestations=table, layers=LayerChecker(), upper=UpperChecker(), **kwargs)  # type: ignore[arg-type]


def test_a_layer_without_a_snapshot_directory_is_unscannable() -> None:
    table = _Table()
    d = _digest("layer")
    table.manifests[d] = FileManifest(entries=())
    layer = LayerInfo(0, d, "mt", 1, d, d, None)
    container = TrackedContainer("ns", "c1", "img", _digest("image"), (layer,), None,
                                 TaskStatus.RUNNING)  # fmt: skip
    result = _sweeper(table).sweep([container], now=T0)
    (v,) = result.violations
    assert (v.layer_digest, v.path, v.kind) == (d, None, "unscannable")
    assert v.detail["reason"] == "layer has no snapshot directory (not unpacked)"
    assert v.detail["snapshot_dir"] is None
    assert result.errors == ()
    (check,) = result.containers[0].checks
    assert check.result == "violations"


def test_an_unresolved_container_is_one_unverified_violation() -> None:
    container = TrackedContainer("ns", "c1", "reg/app:1", None, (), None, TaskStatus.RUNNING,
                                 unresolved="image reg/app:1 not found")  # fmt: skip
    (v,) = _sweeper(_Table()).sweep([container], now=T0).violations
    assert (v.container_id, v.image_digest, v.layer_digest, v.kind) == ("c1", None, None,
                                                                        "unverified")  # fmt: skip
    assert v.detail["reason"] == "image reg/app:1 not checked: image reg/app:1 not found"
    assert Violation.from_dict(v.to_dict()) == v


def test_only_an_unverified_violation_may_lack_an_image_digest() -> None:
    with pytest.raises(InvalidInput, match="needs an image digest"):
        Violation.create(container_id="c", image_digest=None, layer_digest=None,
                         path="etc/x", kind="content", detected_at=T0)  # fmt: skip
    ok = Violation.create(container_id="c", image_digest=None, layer_digest=None,
                          path=None, kind="unverified", detected_at=T0)  # fmt: skip
    doc = ok.to_dict()
    doc["kind"] = "unscannable"
    with pytest.raises(InvalidInput):
        Violation.from_dict(doc)  # the schema says so too


def test_the_pending_clock_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / PENDING_FILE
    d = _digest("layer")
    first = PendingClock.open(path)
    assert first.since(d, T0) == T0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = PendingClock.open(path)
    assert again.since(d, T0 + timedelta(hours=1)) == T0
    again.retain({_digest("other")})
    assert len(PendingClock.open(path)) == 0
    again.since(d, T0)
    again.clear(d)
    assert len(PendingClock.open(path)) == 0


def test_a_sweeper_with_a_reopened_clock_counts_from_the_first_sighting(
    tmp_path: Path,
) -> None:
    path = tmp_path / PENDING_FILE
    table = _Table()
    d = _digest("layer")
    table.manifests[d] = None  # pending
    layer = LayerInfo(0, d, "mt", 1, d, d, tmp_path)
    container = TrackedContainer("ns", "c1", "img", _digest("image"), (layer,), None,
                                 TaskStatus.RUNNING)  # fmt: skip
    grace = {"pending_grace": 60}
    assert _sweeper(table, pending_clock=PendingClock.open(path), **grace).sweep(
        [container], now=T0).violations == ()  # fmt: skip
    late = _sweeper(table, pending_clock=PendingClock.open(path), **grace).sweep(
        [container], now=T0 + timedelta(seconds=60)).violations  # fmt: skip
    assert [(v.layer_digest, v.kind) for v in late] == [(d, "unverified")]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"format":2,"since":{}}',
        b'{"format":1,"since":{"sha256:00":"2026-12-07T08:00:00+00:00"}}',
        b'{"format":1,"since":{"' + _digest("x").encode() + b'":"2026-12-07T08:00:00"}}',
        b'{"format":1,"since":[]}',
    ],
)
def test_a_damaged_pending_clock_is_discarded_not_trusted(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / PENDING_FILE
    path.write_bytes(body)
    assert len(PendingClock.open(path)) == 0


def test_the_pending_clock_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / PENDING_FILE
    since = {_digest(str(i)): T0.isoformat() for i in range(MAX_PENDING + 1)}
    path.write_bytes(json.dumps({"format": 1, "since": since}).encode())
    assert len(PendingClock.open(path)) == 0  # over the cap: refused whole
    clock = PendingClock(None)
    for i in range(MAX_PENDING):
        clock.since(_digest(str(i)), T0)
    late = T0 + timedelta(hours=1)
    assert clock.since(_digest("one more"), late) == late and len(clock) == MAX_PENDING


def test_an_unwritable_state_dir_keeps_the_clock_in_memory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    clock = PendingClock.open(tmp_path / "file" / PENDING_FILE)
    d = _digest("layer")
    assert clock.since(d, T0) == T0
    assert clock.since(d, T0 + timedelta(seconds=5)) == T0
    assert not os.path.exists(tmp_path / "file" / PENDING_FILE)


def test_only_the_overlayfs_snapshotter_is_accepted(tmp_path: Path) -> None:
    base = {"containerd_address": "/run/c.sock", "namespaces": ("k8s.io",), "state_dir": tmp_path}
    assert AgentConfig(**base).snapshotter == "overlayfs"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="snapshotter 'native' is not supported"):
        AgentConfig(**base, snapshotter="native")  # type: ignore[arg-type]


def test_a_trust_anomaly_names_no_container_image_layer_or_path() -> None:
    ok = Violation.create(container_id=None, image_digest=None, layer_digest=None, path=None,
                          kind="trust-anomaly", detected_at=T0,
                          detail={"reason": "refused"})  # fmt: skip
    assert Violation.from_dict(ok.to_dict()) == ok
    with pytest.raises(InvalidInput, match="names no container"):
        Violation.create(container_id="c1", image_digest=None, layer_digest=None, path=None,
                         kind="trust-anomaly", detected_at=T0)  # fmt: skip
    with pytest.raises(InvalidInput, match="container_id must not be empty"):
        Violation.create(container_id=None, image_digest=None, layer_digest=None, path=None,
                         kind="unverified", detected_at=T0)  # fmt: skip


class _Containerd:
    """containerd that lists one container and can resolve nothing else.

    The faults here (a failing listing, a task lookup error) are ones a real
    containerd cannot be made to produce on demand.
    """

    namespace = "ns"
    snapshotter = "overlayfs"

    def __init__(self, *, list_error: Exception | None = None) -> None:
        self.list_error = list_error

    def list_containers(self, filters: tuple[str, ...] = ()) -> list[Container]:
        if self.list_error is not None:
            raise self.list_error
        return [Container("c1", "reg/app:1", "overlayfs", "c1", "io.containerd.runc.v2")]

    def get_image(self, name: str) -> Any:
        raise NotFound(f"image {name} not found")

    def get_task(self, container_id: str) -> Any:
        raise UpstreamError("containerd: deadline exceeded")


def test_an_unresolved_container_whose_task_cannot_be_read_is_not_taken_as_ended() -> None:
    (c,), problems = list_tracked(_Containerd())  # type: ignore[arg-type]
    assert c.unresolved == "image reg/app:1 not found" and problems
    # None would read as "its task is gone": a container seen running is
    # then finalized, unreported.
    assert c.task_status is TaskStatus.UNKNOWN


def test_a_failed_containerd_listing_fails_the_sweep_instead_of_emptying_the_node(
    tmp_path: Path,
) -> None:
    config = AgentConfig(containerd_address="/none", namespaces=("ns",),
                         state_dir=tmp_path / "state", server="http://127.0.0.1:1",
                         token="t")  # fmt: skip
    client = _Containerd(list_error=UpstreamError("containerd: unavailable"))
    server = SimServer()
    # A layer seen pending by an earlier run.
    PendingClock.open(config.state_dir / PENDING_FILE).since(_digest("pending layer"), T0)
    with Spool.open(config.spool_dir) as v, Spool.open(config.report_spool_dir) as r:
        daemon = Daemon(config, server=server, clients=[client],  # type: ignore[list-item]
                        violations=v, reports=r,
                        violation_sender=violation_sender(server),  # type: ignore[arg-type]
                        report_sender=report_sender(server))  # type: ignore[arg-type]  # fmt: skip
        daemon.register()
        # Taken as an empty node, it would finalize every container and
        # forget every pending layer's first sighting.
        with pytest.raises(UpstreamError):
            daemon.sweep_once()
    assert len(PendingClock.open(config.state_dir / PENDING_FILE)) == 1


def test_a_container_on_another_snapshotter_is_unverified_not_skipped() -> None:
    class _Native(_Containerd):
        def list_containers(self, filters: tuple[str, ...] = ()) -> list[Container]:
            return [Container("c1", "reg/app:1", "native", "c1", "io.containerd.runc.v2")]

        def get_image(self, name: str) -> Any:
            return Image(name, _digest("image"), "application/vnd.oci.image.manifest.v1+json", 1)

    (c,), _ = list_tracked(_Native())  # type: ignore[arg-type]
    assert c.unresolved == "snapshotter 'native' is not supported by the agent"
    assert c.image_digest == _digest("image") and c.layers == ()


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_pending_clock_file_is_read_or_discarded_never_raised(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PENDING_FILE
        path.write_bytes(body)
        clock = PendingClock.open(path)  # never raises: read whole, or discarded whole
        assert len(clock) == 0 or body.startswith(b"{")
        assert clock.since(_digest("x"), T0).tzinfo is not None


@settings(max_examples=100, deadline=None)
@given(
    seen=st.dictionaries(
        st.text(min_size=1, max_size=8), st.integers(min_value=0, max_value=10**6), max_size=20
    )
)
def test_the_pending_clock_round_trips(seen: dict[str, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PENDING_FILE
        clock = PendingClock.open(path)
        want = {_digest(k): T0 + timedelta(seconds=v) for k, v in seen.items()}
        for digest, when in want.items():
            clock.since(digest, when)
        again = PendingClock.open(path)
        assert {d: again.since(d, T0 + timedelta(days=30)) for d in want} == want
