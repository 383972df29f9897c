# SPDX-License-Identifier: Apache-2.0
"""The agent's own gRPC transport (agent.containerd._grpc, on h2) against grpcio's server.

grpcio is the reference implementation of the protocol; it serves the
generated servicers here (a tiny containerd) so that deadlines, cancellation,
message caps, concurrent calls and a daemon restart under pooled connections
are exercised against a real gRPC server, without a daemon.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from agent.containerd import ContainerdClient
from agent.containerd._grpc import Channel, RpcError, StatusCode
from agent.containerd._proto.api.services.content.v1 import content_pb2, content_pb2_grpc
from agent.containerd._proto.api.services.events.v1 import events_pb2, events_pb2_grpc
from agent.containerd._proto.api.services.version.v1 import version_pb2, version_pb2_grpc
from attestor.errors import UpstreamError

BIG = 5 * 1024 * 1024  # over the 4 MiB cap on one received message


class Version(version_pb2_grpc.VersionServicer):
    def __init__(self, revision: str) -> None:
        self.revision = revision

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return version_pb2.VersionResponse(version="1.6.20", revision=self.revision)


class Content(content_pb2_grpc.ContentServicer):
    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        time.sleep(2)  # slower than the client's deadline
        return content_pb2.InfoResponse()

    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        yield content_pb2.ReadContentResponse(offset=0, data=b"x" * BIG)


class Events(events_pb2_grpc.EventsServicer):
    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        yield events_pb2.Envelope(namespace="ns", topic="/first")
        while context.is_active():  # then nothing until the client goes away
            time.sleep(0.05)


def _serve(sock: str, revision: str) -> grpc.Server:
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    version_pb2_grpc.add_VersionServicer_to_server(Version(revision), srv)
    content_pb2_grpc.add_ContentServicer_to_server(Content(), srv)
    events_pb2_grpc.add_EventsServicer_to_server(Events(), srv)
    srv.add_insecure_port("unix://" + sock)
    srv.start()
    return srv


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "ctd.sock")
    srv = _serve(path, "r1")
    yield path
    srv.stop(grace=None)


def test_a_restarted_daemon_is_reached_through_a_fresh_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "ctd.sock")
    srv = _serve(path, "r1")
    client = ContainerdClient(path, "ns", timeout=5)
    try:
        assert client.version().revision == "r1"  # leaves an idle pooled connection
        srv.stop(grace=None).wait()
        srv = _serve(path, "r2")
        # The pooled connection is dead; the call goes through a new one.
        assert client.version().revision == "r2"
    finally:
        client.close()
        srv.stop(grace=None)


def test_an_idle_connection_to_a_daemon_shutting_down_is_not_used(tmp_path: Path) -> None:
    path = str(tmp_path / "ctd.sock")
    old = _serve(path, "r1")
    client = ContainerdClient(path, "ns", timeout=5)
    try:
        assert client.version().revision == "r1"  # leaves an idle pooled connection
        # A graceful stop: GOAWAY (and a ping) on the idle connection, which
        # stays open during the grace period; the socket path is served anew.
        stopped = old.stop(grace=3)
        time.sleep(0.3)
        new = _serve(path, "r2")
        assert client.version().revision == "r2"
    finally:
        client.close()
        stopped.wait()
        new.stop(grace=None)


def test_concurrent_calls_from_threads_each_get_their_answer(sock: str) -> None:
    client = ContainerdClient(sock, "ns", timeout=5)
    with client, futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: client.version().revision, range(60)))
    assert answers == ["r1"] * 60


def test_a_call_past_its_deadline_is_deadline_exceeded(sock: str) -> None:
    with ContainerdClient(sock, "ns", timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as info:
            client.get_content_info("sha256:" + "a" * 64)
    assert info.value.detail["grpc_status"] == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 1.5


def test_a_message_over_the_cap_is_resource_exhausted(sock: str) -> None:
    channel = Channel(sock)
    call = channel.call(
        "/containerd.services.content.v1.Content/Read",
        content_pb2.ReadContentRequest(digest="sha256:" + "a" * 64).SerializeToString(),
        metadata=[("containerd-namespace", "ns")],
        timeout=5,
    )
    with pytest.raises(RpcError) as info:
        list(call)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details and "4194304" in info.value.details
    channel.close()


def test_closing_a_subscription_from_another_thread_ends_its_iteration(sock: str) -> None:
    with ContainerdClient(sock, "ns", timeout=5) as client:
        sub = client.subscribe()
        seen: list[str] = []

        def consume() -> None:
            seen.extend(event.topic for event in sub)

        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # blocked on a stream that sends nothing more
        sub.close()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen == ["/first"]


def test_closing_the_client_ends_a_running_subscription(sock: str) -> None:
    client = ContainerdClient(sock, "ns", timeout=5)
    sub = client.subscribe()
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.extend(e.topic for e in sub))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()
    client.close()  # as grpcio's channel.close(): active calls end
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen == ["/first"]
    with pytest.raises(UpstreamError, match="CANCELLED|cancelled"):
        client.version()  # a closed client makes no new call


def test_unknown_method_is_unimplemented(sock: str) -> None:
    channel = Channel(sock)
    call = channel.call("/containerd.services.nope.v1.Nope/Get", b"", metadata=[], timeout=5)
    with pytest.raises(RpcError) as info:
        list(call)
    assert info.value.code == StatusCode.UNIMPLEMENTED
    channel.close()


# -- a pooled connection the daemon drops while our request is on the way ------
# grpcio's server cannot be made to lose this race on purpose, so a scripted
# HTTP/2 server (h2, server side) plays the daemon: it answers the first call,
# then treats the second call on that connection as the fault says.


def _answer(conn: Any, stream: int, revision: str) -> None:
    conn.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc")])
    body = version_pb2.VersionResponse(version="1.6.20", revision=revision).SerializeToString()
    conn.send_data(stream, len(body).to_bytes(5, "big") + body)
    conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)


def _scripted_daemon(path: str, fault: str) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)

    def one_connection(revision: str) -> None:
        sock, _ = listener.accept()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        calls = 0
        with sock:
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if not isinstance(event, h2.events.StreamEnded):
                        continue
                    calls += 1
                    if revision == "r1" and calls == 2:
                        if fault == "goaway":
                            conn.close_connection(last_stream_id=event.stream_id - 2)
                        elif fault == "answered-then-closed":
                            conn.send_headers(
                                event.stream_id,
                                [(":status", "200"), ("content-type", "application/grpc")],
                            )
                        sock.sendall(conn.data_to_send())
                        return
                    _answer(conn, event.stream_id, revision)
                sock.sendall(conn.data_to_send())

    def serve() -> None:
        with listener:
            for revision in ("r1", "r2"):
                try:
                    one_connection(revision)
                except OSError:  # the client closed the connection first
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _version(channel: Channel) -> str:
    call = channel.call(
        "/containerd.services.version.v1.Version/Version", b"", metadata=[], timeout=5
    )
    [raw] = list(call)
    return str(version_pb2.VersionResponse.FromString(raw).revision)


@pytest.mark.parametrize("fault", ["goaway", "closed"])
def test_a_request_the_daemon_never_processed_is_sent_again_on_a_new_connection(
    tmp_path: Path, fault: str
) -> None:
    path = str(tmp_path / "scripted.sock")
    thread = _scripted_daemon(path, fault)
    channel = Channel(path)
    assert _version(channel) == "r1"
    # GOAWAY below our stream, or a close before any answer: not processed.
    assert _version(channel) == "r2"
    channel.close()
    thread.join(timeout=5)


def test_a_call_the_daemon_began_answering_is_not_sent_again(tmp_path: Path) -> None:
    path = str(tmp_path / "scripted.sock")
    thread = _scripted_daemon(path, "answered-then-closed")
    channel = Channel(path)
    assert _version(channel) == "r1"
    with pytest.raises(RpcError) as info:
        _version(channel)  # sent again, it would have reached "r2"
    assert info.value.code == StatusCode.UNAVAILABLE
    assert _version(channel) == "r2"  # the next call opens a new connection
    channel.close()
    thread.join(timeout=5)
