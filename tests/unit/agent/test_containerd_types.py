# SPDX-License-Identifier: Apache-2.0
"""Mount parsing and typed event decoding (no containerd needed)."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import any_pb2

import agent.containerd._proto as proto_pkg
from agent.containerd._proto.api.events import container_pb2, image_pb2, snapshot_pb2, task_pb2
from agent.containerd._proto.api.services.events.v1 import events_pb2
from agent.containerd.events import (
    ContainerCreate,
    ContainerDelete,
    ImageCreate,
    SnapshotCommit,
    TaskExit,
    TaskStart,
    decode_envelope,
)
from agent.containerd.types import Mount

ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"


def test_overlay_mount_lists_lowerdirs_top_first_and_upperdir() -> None:
    m = Mount(
        type="overlay",
        source="overlay",
        options=(
            "index=off",
            f"workdir={ROOT}/9/work",
            f"upperdir={ROOT}/9/fs",
            f"lowerdir={ROOT}/3/fs:{ROOT}/2/fs:{ROOT}/1/fs",
        ),
    )
    assert m.lowerdirs == (Path(f"{ROOT}/3/fs"), Path(f"{ROOT}/2/fs"), Path(f"{ROOT}/1/fs"))
    assert m.upperdir == Path(f"{ROOT}/9/fs")
    assert m.option("index") == "off"
    assert m.option("missing") is None


def test_single_layer_view_is_a_bind_mount_of_the_layer_dir() -> None:
    m = Mount(type="bind", source=f"{ROOT}/1/fs", options=("ro", "rbind"))
    assert m.lowerdirs == (Path(f"{ROOT}/1/fs"),)
    assert m.upperdir is None


def _envelope(topic: str, payload: object, *, type_url: str | None = None) -> events_pb2.Envelope:
    env = events_pb2.Envelope(namespace="ns1", topic=topic)
    env.timestamp.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    packed = any_pb2.Any(
        type_url=type_url or payload.DESCRIPTOR.full_name,  # type: ignore[attr-defined]
        value=payload.SerializeToString(),  # type: ignore[attr-defined]
    )
    env.event.CopyFrom(packed)
    return env


def test_known_events_decode_to_typed_payloads() -> None:
    exited = task_pb2.TaskExit(container_id="c1", id="c1", pid=42, exit_status=137)
    exited.exited_at.FromDatetime(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    cases = [
        ("/images/create", image_pb2.ImageCreate(name="r/a:1", labels={"k": "v"}),
         ImageCreate(name="r/a:1", labels={"k": "v"})),
        ("/snapshot/commit", snapshot_pb2.SnapshotCommit(key="extract-1", name="sha256:ab"),
         SnapshotCommit(key="extract-1", name="sha256:ab")),
        ("/containers/create",
         container_pb2.ContainerCreate(
             id="c1", image="r/a:1", runtime=container_pb2.ContainerCreate.Runtime(name="rt")
         ),
         ContainerCreate(id="c1", image="r/a:1", runtime="rt")),
        ("/containers/delete", container_pb2.ContainerDelete(id="c1"), ContainerDelete(id="c1")),
        ("/tasks/start", task_pb2.TaskStart(container_id="c1", pid=42),
         TaskStart(container_id="c1", pid=42)),
        ("/tasks/exit", exited,
         TaskExit(container_id="c1", id="c1", pid=42, exit_status=137,
                  exited_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))),
    ]  # fmt: skip
    for topic, raw, want in cases:
        event = decode_envelope(_envelope(topic, raw))
        assert event.topic == topic
        assert event.namespace == "ns1"
        assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert event.payload == want


def test_type_url_prefix_is_accepted() -> None:
    raw = container_pb2.ContainerDelete(id="c9")
    url = "type.googleapis.com/containerd.events.ContainerDelete"
    assert decode_envelope(_envelope("/containers/delete", raw, type_url=url)).payload == (
        ContainerDelete(id="c9")
    )


def test_unknown_event_keeps_topic_without_payload() -> None:
    event = decode_envelope(_envelope("/tasks/oom", task_pb2.TaskOOM(container_id="c1")))
    assert event.topic == "/tasks/oom"
    assert event.payload is None


def test_every_generated_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(proto_pkg.__path__, proto_pkg.__name__ + ".")]
    for name in names:
        importlib.import_module(name)
    assert "agent.containerd._proto.api.services.snapshots.v1.snapshots_pb2_grpc" in names
    assert "agent.containerd._proto.api.events.task_pb2" in names
