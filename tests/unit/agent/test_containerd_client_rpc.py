# SPDX-License-Identifier: Apache-2.0
"""ContainerdClient's gRPC plumbing against an in-process gRPC server.

The server implements the generated servicers (a tiny containerd simulator),
so the real channel, metadata and status codes are exercised without a daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.containerd._proto.api.services.content.v1 import content_pb2, content_pb2_grpc
from agent.containerd._proto.api.services.images.v1 import images_pb2_grpc
from agent.containerd._proto.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from agent.containerd._proto.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from agent.containerd._proto.api.services.version.v1 import version_pb2, version_pb2_grpc
from agent.containerd._proto.api.types import mount_pb2
from agent.containerd.client import ContainerdClient
from agent.containerd.snapshots import VIEW_KEY_PREFIX
from attestor.errors import InvalidInput, NotFound, TooLarge, UpstreamError

BLOB = b"x" * 3000
BLOB_DIGEST = "sha256:" + __import__("hashlib").sha256(BLOB).hexdigest()


class Recorder:
    def __init__(self) -> None:
        self.namespaces: list[str | None] = []
        self.leases: list[tuple[str, dict[str, str]]] = []
        self.deleted_leases: list[str] = []
        self.views: list[tuple[str, str, str | None]] = []
        self.removed: list[str] = []

    def ns(self, context: grpc.ServicerContext) -> dict[str, str]:
        md = dict(context.invocation_metadata())
        self.namespaces.append(md.get("containerd-namespace"))
        return md


class Version(version_pb2_grpc.VersionServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.rec.ns(context)
        return version_pb2.VersionResponse(version="1.6.20", revision="r1")


class Images(images_pb2_grpc.ImagesServicer):
    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        context.abort(grpc.StatusCode.NOT_FOUND, f'image "{request.name}": not found')


class Content(content_pb2_grpc.ContentServicer):
    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        info = content_pb2.Info(digest=request.digest, size=len(BLOB), labels={"a": "b"})
        return content_pb2.InfoResponse(info=info)

    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        for off in range(0, len(BLOB), 1024):
            yield content_pb2.ReadContentResponse(offset=off, data=BLOB[off : off + 1024])


class Leases(leases_pb2_grpc.LeasesServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.rec.leases.append((request.id, dict(request.labels)))
        return leases_pb2.CreateResponse(lease=leases_pb2.Lease(id=request.id))

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.rec.deleted_leases.append(request.id)
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()


class Snapshots(snapshots_pb2_grpc.SnapshotsServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def View(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        md = self.rec.ns(context)
        self.rec.views.append((request.key, request.parent, md.get("containerd-lease")))
        mount = mount_pb2.Mount(type="bind", source="/snap/1/fs", options=["ro", "rbind"])
        return snapshots_pb2.ViewSnapshotResponse(mounts=[mount])

    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.rec.removed.append(request.key)
        context.abort(grpc.StatusCode.INTERNAL, "remove failed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    version_pb2_grpc.add_VersionServicer_to_server(Version(rec), srv)
    images_pb2_grpc.add_ImagesServicer_to_server(Images(), srv)
    content_pb2_grpc.add_ContentServicer_to_server(Content(), srv)
    leases_pb2_grpc.add_LeasesServicer_to_server(Leases(rec), srv)
    snapshots_pb2_grpc.add_SnapshotsServicer_to_server(Snapshots(rec), srv)
    sock = str(tmp_path / "ctd.sock")
    srv.add_insecure_port("unix://" + sock)
    srv.start()
    yield sock, rec
    srv.stop(grace=None)


def _client(sock: str) -> ContainerdClient:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return ContainerdClient(sock, "ns-test", timeout=5, clock=lambda: now)


def test_calls_carry_the_namespace(server: tuple[str, Recorder]) -> None:
    sock, rec = server
    with _client(sock) as client:
        assert client.version().version == "1.6.20"
    assert rec.namespaces == ["ns-test"]


def test_not_found_status_becomes_not_found(server: tuple[str, Recorder]) -> None:
    with _client(server[0]) as client, pytest.raises(NotFound, match="not found"):
        client.get_image("nope:1")


def test_unimplemented_becomes_upstream_error(server: tuple[str, Recorder]) -> None:
    with _client(server[0]) as client, pytest.raises(UpstreamError) as info:
        client.list_images()
    assert info.value.detail["grpc_status"] == "UNIMPLEMENTED"


def test_unreachable_socket_is_upstream_error(tmp_path: Path) -> None:
    client = ContainerdClient(str(tmp_path / "absent.sock"), "ns", timeout=1)
    with client, pytest.raises(UpstreamError):
        client.version()


def test_read_content_streams_and_enforces_the_cap(server: tuple[str, Recorder]) -> None:
    with _client(server[0]) as client:
        assert client.read_content(BLOB_DIGEST) == BLOB
        assert client.get_content_info(BLOB_DIGEST).labels == {"a": "b"}
        with pytest.raises(TooLarge):
            client.read_content(BLOB_DIGEST, max_bytes=100)
        with pytest.raises(InvalidInput):
            client.read_content("md5:abc")


def test_view_runs_under_an_expiring_lease_and_is_always_cleaned(
    server: tuple[str, Recorder],
) -> None:
    sock, rec = server
    with _client(sock) as client:
        with pytest.raises(KeyError), client.view_mounts("sha256:parent") as mounts:
            assert mounts[0].lowerdirs == (Path("/snap/1/fs"),)
            raise KeyError("body error wins over the failed Remove")
    [(key, parent, lease)] = rec.views
    assert key.startswith(VIEW_KEY_PREFIX) and parent == "sha256:parent"
    assert rec.leases == [(lease, {"containerd.io/gc.expire": "2026-01-01T13:00:00Z"})]
    assert rec.removed == [key]
    # Remove failed, so the lease deletion is what releases the view to GC.
    assert rec.deleted_leases == [lease]
