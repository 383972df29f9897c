# SPDX-License-Identifier: Apache-2.0
"""Typed client for the containerd gRPC API (one namespace, one socket).

Every call carries the ``containerd-namespace`` metadata and a deadline, and
returns frozen values from :mod:`agent.containerd.types`, never protobuf
messages. gRPC failures become :class:`attestor.errors.NotFound`,
:class:`~attestor.errors.Conflict` or :class:`~attestor.errors.UpstreamError`.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from agent.containerd._grpc import Call, RpcError, StatusCode
from agent.containerd._proto.api.services.containers.v1 import containers_pb2
from agent.containerd._proto.api.services.content.v1 import content_pb2
from agent.containerd._proto.api.services.events.v1 import events_pb2
from agent.containerd._proto.api.services.images.v1 import images_pb2
from agent.containerd._proto.api.services.tasks.v1 import tasks_pb2
from agent.containerd._proto.api.services.version.v1 import version_pb2
from agent.containerd._rpc import Rpc, method, translate, undecodable
from agent.containerd.events import Event, decode_envelope
from agent.containerd.snapshots import SnapshotService
from agent.containerd.types import (
    Container,
    ContentInfo,
    Image,
    Mount,
    SnapshotInfo,
    Task,
    TaskStatus,
    Version,
)
from attestor.digests import Digest, parse_digest
from attestor.errors import TooLarge

__all__ = ["DEFAULT_MAX_CONTENT_BYTES", "ContainerdClient", "EventSubscription"]

#: Manifests, indexes and configs are small; a larger blob is refused.
DEFAULT_MAX_CONTENT_BYTES = 4 * 1024 * 1024

_VERSION = method(version_pb2.DESCRIPTOR, "Version", "Version")
_IMAGES_LIST = method(images_pb2.DESCRIPTOR, "Images", "List")
_IMAGES_GET = method(images_pb2.DESCRIPTOR, "Images", "Get")
_CONTAINERS_GET = method(containers_pb2.DESCRIPTOR, "Containers", "Get")
_CONTAINERS_LIST = method(containers_pb2.DESCRIPTOR, "Containers", "List")
_CONTENT_INFO = method(content_pb2.DESCRIPTOR, "Content", "Info")
_CONTENT_READ = method(content_pb2.DESCRIPTOR, "Content", "Read")
_TASKS_LIST = method(tasks_pb2.DESCRIPTOR, "Tasks", "List")
_TASKS_GET = method(tasks_pb2.DESCRIPTOR, "Tasks", "Get")
_TASKS_PAUSE = method(tasks_pb2.DESCRIPTOR, "Tasks", "Pause")
_TASKS_RESUME = method(tasks_pb2.DESCRIPTOR, "Tasks", "Resume")
_TASKS_KILL = method(tasks_pb2.DESCRIPTOR, "Tasks", "Kill")
_SUBSCRIBE = method(events_pb2.DESCRIPTOR, "Events", "Subscribe")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _image(raw: Any) -> Image:
    return Image(
        name=raw.name,
        target_digest=Digest(raw.target.digest),
        media_type=raw.target.media_type,
        size=raw.target.size,
        labels=dict(raw.labels),
    )


def _container(raw: Any) -> Container:
    return Container(
        id=raw.id,
        image=raw.image,
        snapshotter=raw.snapshotter,
        snapshot_key=raw.snapshot_key,
        runtime=raw.runtime.name,
        labels=dict(raw.labels),
    )


def _task(raw: Any) -> Task:
    return Task(
        # Tasks.List fills only ``id`` (the container id for an init process).
        container_id=raw.container_id or raw.id,
        pid=raw.pid,
        status=TaskStatus(raw.status),
        exit_status=raw.exit_status,
        exited_at=raw.exited_at.ToDatetime(tzinfo=UTC) if raw.HasField("exited_at") else None,
    )


class EventSubscription:
    """An open ``Events.Subscribe`` stream; iterate it, then close it.

    Iteration ends quietly when :meth:`close` is called (from any thread) or
    when the optional deadline passes.
    """

    def __init__(self, call: Call) -> None:
        self._call = call
        self._closed = False

    def __iter__(self) -> Iterator[Event]:
        """Yield events as containerd publishes them.

        Raises:
            UpstreamError: the stream failed for another reason.
        """
        try:
            for raw in self._call:
                yield decode_envelope(events_pb2.Envelope.FromString(raw))
        except RpcError as e:
            if self._closed or e.code in (StatusCode.CANCELLED, StatusCode.DEADLINE_EXCEEDED):
                return
            raise translate(e, "events subscription") from e
        except DecodeError as e:
            raise undecodable(e, "events subscription") from e

    def close(self) -> None:
        """Cancel the stream; a blocked iteration returns."""
        self._closed = True
        self._call.cancel()

    def __enter__(self) -> EventSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ContainerdClient:
    """containerd over its gRPC unix socket, in one namespace.

    Args:
        address: path of containerd's gRPC socket (``unix://`` is optional).
        namespace: the containerd namespace every call is made in.
        timeout: deadline in seconds for each unary call.
        snapshotter: snapshotter used when a call does not name one.
        max_content_bytes: cap for :meth:`read_content`.
        clock: source of "now" (for view lease expiry); UTC wall clock by default.
    """

    def __init__(
        self,
        address: str,
        namespace: str,
        *,
        timeout: float = 10.0,
        snapshotter: str = "overlayfs",
        max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._rpc = Rpc(address, namespace, timeout=timeout)
        self.namespace = namespace
        self.snapshotter = snapshotter
        self._max_content = max_content_bytes
        self._snapshots = SnapshotService(self._rpc, clock=clock, view_ttl=timedelta(hours=1))

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Release the client (each call holds its own connection)."""
        self._rpc.close()

    def __enter__(self) -> ContainerdClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- version, images, containers -----------------------------------------

    def version(self) -> Version:
        """The daemon's version.

        Raises:
            UpstreamError: containerd is unreachable or failed.
        """
        resp = self._rpc.unary("version", _VERSION, empty_pb2.Empty())
        return Version(version=resp.version, revision=resp.revision)

    def list_images(self, filters: Sequence[str] = ()) -> list[Image]:
        """Image records in the namespace (containerd filter syntax).

        Raises:
            UpstreamError: containerd failed.
        """
        req = images_pb2.ListImagesRequest(filters=list(filters))
        return [_image(i) for i in self._rpc.unary("list images", _IMAGES_LIST, req).images]

    def get_image(self, name: str) -> Image:
        """One image record by name.

        Raises:
            NotFound: no image has that name.
            UpstreamError: containerd failed.
        """
        req = images_pb2.GetImageRequest(name=name)
        return _image(self._rpc.unary(f"get image {name}", _IMAGES_GET, req).image)

    def get_container(self, container_id: str) -> Container:
        """One container record by id.

        Raises:
            NotFound: no such container.
            UpstreamError: containerd failed.
        """
        req = containers_pb2.GetContainerRequest(id=container_id)
        resp = self._rpc.unary(f"get container {container_id}", _CONTAINERS_GET, req)
        return _container(resp.container)

    def list_containers(self, filters: Sequence[str] = ()) -> list[Container]:
        """Container records in the namespace.

        Raises:
            UpstreamError: containerd failed.
        """
        req = containers_pb2.ListContainersRequest(filters=list(filters))
        resp = self._rpc.unary("list containers", _CONTAINERS_LIST, req)
        return [_container(c) for c in resp.containers]

    # -- content ---------------------------------------------------------------

    def get_content_info(self, digest: str) -> ContentInfo:
        """Size and labels of a blob (``containerd.io/uncompressed`` is the diffID).

        Raises:
            InvalidInput: ``digest`` is not ``sha256:<hex>``.
            NotFound: the blob is not in the content store.
            UpstreamError: containerd failed.
        """
        parse_digest(digest)
        req = content_pb2.InfoRequest(digest=digest)
        info = self._rpc.unary(f"content info {digest}", _CONTENT_INFO, req).info
        return ContentInfo(digest=Digest(info.digest), size=info.size, labels=dict(info.labels))

    def read_content(self, digest: str, *, max_bytes: int | None = None) -> bytes:
        """Read a whole blob (a manifest, an index or a config).

        The bytes are returned as stored; callers that trust them must check
        them against ``digest`` (``layers.resolve_image_layers`` does).

        Raises:
            InvalidInput: ``digest`` is not ``sha256:<hex>``.
            TooLarge: the blob is larger than ``max_bytes`` (default: the client cap).
            NotFound: the blob is not in the content store.
            UpstreamError: containerd failed.
        """
        cap = self._max_content if max_bytes is None else max_bytes
        size = self.get_content_info(digest).size
        if size > cap:
            raise TooLarge(f"blob {digest} is {size} bytes, cap is {cap}")
        req = content_pb2.ReadContentRequest(digest=digest, offset=0, size=size)
        chunks: list[bytes] = []
        total = 0
        for chunk in self._rpc.stream(
            f"read {digest}", _CONTENT_READ, req, timeout=self._rpc.timeout
        ):
            total += len(chunk.data)
            # Guard again while streaming: the blob could change under us.
            if total > cap:
                raise TooLarge(f"blob {digest} exceeds cap {cap} while reading")
            chunks.append(chunk.data)
        return b"".join(chunks)

    # -- snapshots --------------------------------------------------------------

    def snapshot_stat(self, key: str, *, snapshotter: str | None = None) -> SnapshotInfo:
        """Stat a snapshot (committed ones are keyed by chainID).

        Raises:
            NotFound: no such snapshot.
            UpstreamError: containerd failed.
        """
        return self._snapshots.stat(key, snapshotter=snapshotter or self.snapshotter)

    def list_snapshots(
        self, filters: Sequence[str] = (), *, snapshotter: str | None = None
    ) -> list[SnapshotInfo]:
        """All snapshots of a snapshotter.

        Raises:
            UpstreamError: containerd failed.
        """
        return self._snapshots.list_snapshots(
            snapshotter=snapshotter or self.snapshotter, filters=tuple(filters)
        )

    def view_mounts(
        self, key: str, *, snapshotter: str | None = None
    ) -> AbstractContextManager[list[Mount]]:
        """Context manager: a temporary view on committed ``key``, yielding its mounts.

        The view is always removed on exit. Overlay mounts list ``lowerdir=``
        top layer first; a single-layer view is a bind mount of the layer dir.

        Raises:
            NotFound: ``key`` does not exist.
            UpstreamError: containerd failed.
        """
        return self._snapshots.view_mounts(key, snapshotter=snapshotter or self.snapshotter)

    def mounts(self, active_key: str, *, snapshotter: str | None = None) -> list[Mount]:
        """Mounts of an active snapshot (a container's rw layer; key = container id).

        Raises:
            NotFound: no such snapshot.
            UpstreamError: containerd failed (it refuses committed keys).
        """
        return self._snapshots.mounts(active_key, snapshotter=snapshotter or self.snapshotter)

    # -- tasks --------------------------------------------------------------------

    def list_tasks(self) -> list[Task]:
        """Init processes of all tasks in the namespace.

        Raises:
            UpstreamError: containerd failed.
        """
        resp = self._rpc.unary("list tasks", _TASKS_LIST, tasks_pb2.ListTasksRequest())
        return [_task(t) for t in resp.tasks]

    def get_task(self, container_id: str) -> Task:
        """The task of one container.

        Raises:
            NotFound: the container has no task.
            UpstreamError: containerd failed.
        """
        req = tasks_pb2.GetRequest(container_id=container_id)
        return _task(self._rpc.unary(f"get task {container_id}", _TASKS_GET, req).process)

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container's task.

        Raises:
            NotFound: the container has no task.
            UpstreamError: containerd failed.
        """
        req = tasks_pb2.PauseTaskRequest(container_id=container_id)
        self._rpc.unary(f"pause {container_id}", _TASKS_PAUSE, req)

    def resume(self, container_id: str) -> None:
        """Thaw a paused task.

        Raises:
            NotFound: the container has no task.
            UpstreamError: containerd failed.
        """
        req = tasks_pb2.ResumeTaskRequest(container_id=container_id)
        self._rpc.unary(f"resume {container_id}", _TASKS_RESUME, req)

    def kill(
        self,
        container_id: str,
        signal: int = _signal.SIGKILL,
        *,
        all_processes: bool = True,
    ) -> None:
        """Send ``signal`` to the task (to all of its processes by default).

        Raises:
            NotFound: the container has no task.
            UpstreamError: containerd failed.
        """
        req = tasks_pb2.KillRequest(container_id=container_id, signal=signal, all=all_processes)
        self._rpc.unary(f"kill {container_id}", _TASKS_KILL, req)

    # -- events ---------------------------------------------------------------------

    def subscribe(
        self, filters: Sequence[str] = (), *, timeout: float | None = None
    ) -> EventSubscription:
        """Subscribe to events (containerd filter syntax, e.g. ``topic~="/tasks/"``).

        The subscription sees every namespace unless a filter restricts it
        (``namespace==NS``). ``timeout`` bounds the whole stream.
        """
        req = events_pb2.SubscribeRequest(filters=list(filters))
        call = self._rpc.call(_SUBSCRIBE, req, timeout=timeout)
        # Registered now, as grpcio did: events published before the first
        # iteration are delivered too.
        call.start()
        return EventSubscription(call)
