# SPDX-License-Identifier: Apache-2.0
"""Typed containerd events, decoded from the ``Events.Subscribe`` envelopes.

containerd packs each payload in a ``google.protobuf.Any`` whose type URL is
the message's full name (``containerd.events.TaskExit``). Only the payloads
the agent reacts to are decoded; any other topic keeps ``payload=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import message as _message
from google.protobuf import timestamp_pb2

from agent.containerd._proto.api.events import container_pb2, image_pb2, snapshot_pb2, task_pb2
from agent.containerd._proto.api.services.events.v1 import events_pb2
from attestor.errors import UpstreamError

__all__ = [
    "ContainerCreate",
    "ContainerDelete",
    "Event",
    "EventPayload",
    "ImageCreate",
    "ImageDelete",
    "ImageUpdate",
    "SnapshotCommit",
    "TaskExit",
    "TaskStart",
    "decode_envelope",
]


@dataclass(frozen=True)
class ImageCreate:
    """``/images/create``."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageUpdate:
    """``/images/update``."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageDelete:
    """``/images/delete``."""

    name: str


@dataclass(frozen=True)
class SnapshotCommit:
    """``/snapshot/commit``: ``name`` is the committed chainID, ``key`` the active key."""

    key: str
    name: str


@dataclass(frozen=True)
class ContainerCreate:
    """``/containers/create``."""

    id: str
    image: str
    runtime: str


@dataclass(frozen=True)
class ContainerDelete:
    """``/containers/delete``."""

    id: str


@dataclass(frozen=True)
class TaskStart:
    """``/tasks/start``."""

    container_id: str
    pid: int


@dataclass(frozen=True)
class TaskExit:
    """``/tasks/exit``: ``id`` is the exec id (equals the container id for init)."""

    container_id: str
    id: str
    pid: int
    exit_status: int
    exited_at: datetime | None


EventPayload = (
    ImageCreate
    | ImageUpdate
    | ImageDelete
    | SnapshotCommit
    | ContainerCreate
    | ContainerDelete
    | TaskStart
    | TaskExit
)


@dataclass(frozen=True)
class Event:
    """One event: ``payload`` is None for topics the agent does not decode."""

    timestamp: datetime | None
    namespace: str
    topic: str
    payload: EventPayload | None


def _time(ts: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if present else None


def _image_create(m: Any) -> EventPayload:
    return ImageCreate(name=m.name, labels=dict(m.labels))


def _image_update(m: Any) -> EventPayload:
    return ImageUpdate(name=m.name, labels=dict(m.labels))


def _task_exit(m: Any) -> EventPayload:
    return TaskExit(
        container_id=m.container_id,
        id=m.id,
        pid=m.pid,
        exit_status=m.exit_status,
        exited_at=_time(m.exited_at, m.HasField("exited_at")),
    )


_Converter = Callable[[Any], EventPayload]
_CONVERTERS: tuple[tuple[type[_message.Message], _Converter], ...] = (
    (image_pb2.ImageCreate, _image_create),
    (image_pb2.ImageUpdate, _image_update),
    (image_pb2.ImageDelete, lambda m: ImageDelete(name=m.name)),
    (snapshot_pb2.SnapshotCommit, lambda m: SnapshotCommit(key=m.key, name=m.name)),
    (
        container_pb2.ContainerCreate,
        lambda m: ContainerCreate(id=m.id, image=m.image, runtime=m.runtime.name),
    ),
    (container_pb2.ContainerDelete, lambda m: ContainerDelete(id=m.id)),
    (task_pb2.TaskStart, lambda m: TaskStart(container_id=m.container_id, pid=m.pid)),
    (task_pb2.TaskExit, _task_exit),
)
# Keyed by the full protobuf name, which is what containerd puts in the type
# URL. Taken from the descriptors because the packages differ per file (image
# events live in ``containerd.services.images.v1``, the rest in
# ``containerd.events``).
_DECODERS: dict[str, tuple[type[_message.Message], _Converter]] = {
    cls.DESCRIPTOR.full_name: (cls, convert) for cls, convert in _CONVERTERS
}


def decode_envelope(envelope: events_pb2.Envelope) -> Event:
    """Turn a raw ``Envelope`` into an :class:`Event`.

    Raises:
        UpstreamError: if a known payload type does not parse.
    """
    payload: EventPayload | None = None
    if envelope.HasField("event"):
        # containerd's typeurl uses the bare message name; accept a
        # "type.googleapis.com/" style prefix too.
        name = envelope.event.type_url.rsplit("/", 1)[-1]
        decoder = _DECODERS.get(name)
        if decoder is not None:
            cls, convert = decoder
            raw = cls()
            try:
                raw.ParseFromString(envelope.event.value)
            except _message.DecodeError as e:
                raise UpstreamError(f"containerd event {name} does not parse: {e}") from e
            payload = convert(raw)
    return Event(
        timestamp=_time(envelope.timestamp, envelope.HasField("timestamp")),
        namespace=envelope.namespace,
        topic=envelope.topic,
        payload=payload,
    )
