# SPDX-License-Identifier: Apache-2.0
"""A small gRPC client (unary and server-streaming calls) over a unix socket, on h2.

Why not grpcio: the agent needs four things from gRPC (a unary call, a
server-streaming call, metadata, deadlines) against one local daemon, and
grpcio costs a node agent about 12 MB of resident memory (its C core, the
asyncio support it loads at import, its threads). h2 does the HTTP/2 framing
and HPACK; this module adds only the gRPC rules on top
(https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
length-prefixed messages, ``grpc-status``/``grpc-message`` in the trailers
(or in the headers of a trailers-only answer), ``grpc-timeout``.

A :class:`Channel` keeps a few idle connections; a call takes one (or
opens one), runs one stream on it, and gives it back only when the stream
ended cleanly. So no two calls share a connection at a time (the agent calls
from several threads), and cancelling a call from any thread only shuts its
own socket. An idle connection the daemon has closed meanwhile (a restart)
is replaced once, transparently, when it fails before the daemon answered
anything on it.
"""

from __future__ import annotations

import enum
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions

__all__ = ["DEFAULT_MAX_MESSAGE", "Call", "Channel", "RpcError", "StatusCode"]

#: grpcio's default cap on one received message.
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
_READ = 64 * 1024
_PREFIX = 5  # compressed flag (1 byte) + big-endian length (4 bytes)
#: Idle connections kept per channel (about one per agent thread).
_MAX_IDLE = 4


class StatusCode(enum.IntEnum):
    """gRPC status codes (the names grpcio uses)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# HTTP status of a non-gRPC answer -> gRPC code (PROTOCOL-HTTP2.md, http-grpc-status-mapping).
_HTTP_STATUS = {
    "400": StatusCode.INTERNAL,
    "401": StatusCode.UNAUTHENTICATED,
    "403": StatusCode.PERMISSION_DENIED,
    "404": StatusCode.UNIMPLEMENTED,
    "429": StatusCode.UNAVAILABLE,
    "502": StatusCode.UNAVAILABLE,
    "503": StatusCode.UNAVAILABLE,
    "504": StatusCode.UNAVAILABLE,
}


class RpcError(Exception):
    """A call that did not end with status OK."""

    def __init__(self, code: StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _reset(error_code: int | None) -> RpcError:
    # RST_STREAM CANCEL (0x8) is a cancelled call; any other code an internal error.
    code = StatusCode.CANCELLED if error_code == 0x8 else StatusCode.INTERNAL
    return RpcError(code, f"stream reset by the server (HTTP/2 error {error_code})")


def _status(value: str | None) -> StatusCode:
    try:
        return StatusCode(int(value or ""))
    except ValueError:
        return StatusCode.UNKNOWN


class _Stale(Exception):
    """A reused idle connection turned out closed before any answer on it."""


class _Conn:
    """One HTTP/2 connection; one call at a time uses it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.initiate_connection()
        self.reused = False

    def close(self) -> None:
        self.sock.close()

    def usable(self) -> bool:
        """Whether an idle connection may carry a call: the daemon ended nothing meanwhile.

        Reads what arrived while idle without blocking (pings are answered);
        a GOAWAY, an end of stream or a protocol error (h2 refuses the ping
        grpc servers send after their GOAWAY) means it may not.
        """
        try:
            self.sock.setblocking(False)
            try:
                while True:
                    try:
                        data = self.sock.recv(_READ)
                    except BlockingIOError:
                        return True
                    if not data:
                        return False
                    events = self.h2.receive_data(data)
                    if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                        return False
                    out = self.h2.data_to_send()
                    if out:
                        self.sock.sendall(out)
            finally:
                self.sock.setblocking(True)
        except (OSError, h2.exceptions.ProtocolError):
            return False


class Channel:
    """Connections to one unix socket, reused by calls one at a time.

    Args:
        address: path of the unix socket.
        max_idle: idle connections kept; beyond, a finished call's is closed.
    """

    def __init__(self, address: str, *, max_idle: int = _MAX_IDLE) -> None:
        self.address = address
        self._max_idle = max_idle
        self._idle: list[_Conn] = []
        self._active: set[Call] = set()
        self._lock = threading.Lock()
        self._closed = False

    def call(
        self,
        path: str,
        request: bytes,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> Call:
        """An unstarted call of ``path`` (iterating it, or :meth:`Call.start`, sends it)."""
        return Call(
            self, path, request, metadata=metadata, timeout=timeout, max_message=max_message
        )

    def close(self) -> None:
        """Close the idle connections and cancel the calls still running (as grpcio did)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            active, self._active = self._active, set()
        for conn in idle:
            conn.close()
        for call in active:
            call.cancel()

    def _enter(self, call: Call) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._active.add(call)
            return True

    def _leave(self, call: Call) -> None:
        with self._lock:
            self._active.discard(call)

    def _connect(self, timeout: float | None) -> _Conn:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock)

    def _take(self) -> _Conn | None:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.usable():
                return conn
            conn.close()

    def _give(self, conn: _Conn) -> None:
        conn.reused = True
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()


class Call:
    """One call (one HTTP/2 stream); iterate it for the response messages (bytes).

    Args:
        channel: where its connection comes from and goes back to.
        path: ``/package.Service/Method``.
        request: the serialized request message.
        metadata: extra headers (lower-case names).
        timeout: deadline in seconds for the whole call; None waits forever.
        max_message: cap on one received message (RESOURCE_EXHAUSTED beyond).
    """

    def __init__(
        self,
        channel: Channel,
        path: str,
        request: bytes,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self._channel = channel
        self._path = path
        self._request = request
        self._metadata = metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._max = max_message
        self._conn: _Conn | None = None
        self._stream = 0
        self._started = False
        self._failed: RpcError | None = None
        self._ended: tuple[str | None, str, bytearray] | None = None
        self._cancelled = threading.Event()

    def start(self) -> None:
        """Send the request now (iteration does it otherwise).

        A subscription must be registered before the events it should see
        happen. A failure here is raised by the iteration, as when iteration
        starts the call.
        """
        if self._started:
            return
        self._started = True
        if self._cancelled.is_set() or not self._channel._enter(self):
            self._failed = RpcError(StatusCode.CANCELLED, "cancelled")
            return
        try:
            with self._errors():
                self._open()
        except RpcError as e:
            self._failed = e

    def cancel(self) -> None:
        """End the call from any thread; a blocked iteration raises CANCELLED."""
        self._cancelled.set()
        conn = self._conn
        if conn is not None:
            try:
                # shutdown (not close) wakes a recv blocked in another thread.
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __iter__(self) -> Iterator[bytes]:
        """Yield each response message.

        Raises:
            RpcError: the call failed, was cancelled or passed its deadline.
        """
        self.start()
        try:
            if self._failed is not None:
                raise self._failed
            with self._errors():
                try:
                    yield from self._receive()
                except _Stale:
                    self._drop()
                    self._send(self._channel._connect(self._remaining()))
                    yield from self._receive()
            if self._ended is None:  # _receive returns only at the stream's end
                raise RpcError(StatusCode.INTERNAL, "stream did not end")
            conn, self._conn = self._conn, None
            if conn is not None and not self._cancelled.is_set():
                self._channel._give(conn)
            self._finish(*self._ended)
        finally:
            self._channel._leave(self)
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Socket and HTTP/2 failures as gRPC statuses (grpcio's codes for them)."""
        try:
            yield
        except TimeoutError:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None
        except OSError as e:
            if self._cancelled.is_set():
                raise RpcError(StatusCode.CANCELLED, "cancelled") from None
            where = self._channel.address
            raise RpcError(StatusCode.UNAVAILABLE, f"{where}: {e.strerror or e}") from e
        except h2.exceptions.ProtocolError as e:
            raise RpcError(StatusCode.INTERNAL, f"HTTP/2 protocol error: {e}") from e

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        return left

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _headers(self) -> list[tuple[str, str]]:
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", self._path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        left = self._remaining()
        if left is not None:
            headers.append(("grpc-timeout", f"{max(1, int(left * 1000))}m"))
        return headers + list(self._metadata)

    def _open(self) -> None:
        pooled = self._channel._take()
        if pooled is not None:
            try:
                self._send(pooled)
                return
            except OSError:
                # The daemon closed it while idle; the request did not leave.
                self._drop()
        self._send(self._channel._connect(self._remaining()))

    def _send(self, conn: _Conn) -> None:
        self._conn = conn
        conn.sock.settimeout(self._remaining())
        stream = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(stream, self._headers())
        body = len(self._request).to_bytes(_PREFIX, "big") + self._request
        conn.h2.send_data(stream, body, end_stream=True)
        conn.sock.sendall(conn.h2.data_to_send())
        self._stream = stream

    def _receive(self) -> Iterator[bytes]:
        conn, stream = self._conn, self._stream
        if conn is None:
            raise RpcError(StatusCode.INTERNAL, "call not started")
        # Only before any answer may a reused connection's failure be a stale one.
        may_be_stale = conn.reused
        buf = bytearray()
        status: str | None = None
        message = ""
        while True:
            if self._cancelled.is_set():
                raise RpcError(StatusCode.CANCELLED, "cancelled")
            conn.sock.settimeout(self._remaining())
            try:
                data = conn.sock.recv(_READ)
            except (ConnectionResetError, BrokenPipeError):
                if may_be_stale and not self._cancelled.is_set():
                    raise _Stale from None
                raise
            if not data:
                if self._cancelled.is_set():
                    raise RpcError(StatusCode.CANCELLED, "cancelled")
                if may_be_stale:
                    raise _Stale
                raise RpcError(StatusCode.UNAVAILABLE, "connection closed by the server")
            for event in conn.h2.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    # GOAWAY: streams above last_stream_id were not processed.
                    if may_be_stale and (event.last_stream_id or 0) < stream:
                        raise _Stale
                    raise RpcError(StatusCode.UNAVAILABLE, "connection terminated by the server")
                if getattr(event, "stream_id", stream) != stream:
                    continue
                may_be_stale = False
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    fields = {str(k): str(v) for k, v in event.headers or ()}
                    if isinstance(event, h2.events.ResponseReceived):
                        self._check_response(fields)
                    if "grpc-status" in fields:
                        status = fields["grpc-status"]
                        message = unquote(fields.get("grpc-message", ""))
                elif isinstance(event, h2.events.DataReceived):
                    buf += event.data or b""
                    conn.h2.acknowledge_received_data(event.flow_controlled_length, stream)
                    yield from self._messages(buf)
                elif isinstance(event, h2.events.StreamEnded):
                    out = conn.h2.data_to_send()
                    if out:
                        conn.sock.sendall(out)
                    self._ended = (status, message, buf)
                    return
                elif isinstance(event, h2.events.StreamReset):
                    raise _reset(event.error_code)
            out = conn.h2.data_to_send()
            if out:
                conn.sock.sendall(out)

    @staticmethod
    def _check_response(fields: dict[str, str]) -> None:
        http = fields.get(":status", "")
        if http != "200":
            code = _HTTP_STATUS.get(http, StatusCode.UNKNOWN)
            raise RpcError(code, f"HTTP status {http or 'missing'}")
        if not fields.get("content-type", "").startswith("application/grpc"):
            raise RpcError(StatusCode.UNKNOWN, f"content-type {fields.get('content-type')!r}")

    def _messages(self, buf: bytearray) -> Iterator[bytes]:
        while len(buf) >= _PREFIX:
            if buf[0] != 0:
                # No compression is negotiated (no grpc-accept-encoding sent).
                raise RpcError(StatusCode.INTERNAL, "compressed message not negotiated")
            size = int.from_bytes(buf[1:_PREFIX], "big")
            if size > self._max:
                raise RpcError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"received message larger than max ({size} vs. {self._max})",
                )
            if len(buf) < _PREFIX + size:
                return
            message = bytes(buf[_PREFIX : _PREFIX + size])
            del buf[: _PREFIX + size]
            yield message

    def _finish(self, status: str | None, message: str, buf: bytearray) -> None:
        if status is None:
            raise RpcError(StatusCode.UNKNOWN, "stream ended without grpc-status")
        code = _status(status)
        if code != StatusCode.OK:
            # The server enforces the deadline we sent too, and may report it
            # in its own words; past our deadline the call ended by its deadline.
            if self._expired():
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded ({message})")
            raise RpcError(code, message)
        if buf:
            raise RpcError(StatusCode.INTERNAL, f"{len(buf)} bytes of a truncated message")
