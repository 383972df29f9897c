# SPDX-License-Identifier: Apache-2.0
"""Connections to registries that honour a total deadline and an address rule.

``requests`` offers a timeout per socket operation only: a server that sends
one byte just before each timeout holds the thread for as long as it likes,
during the response headers as well as the body. A :class:`Deadline` bounds
the whole exchange: every socket a request opens or reuses is registered with
it, and one watchdog thread shuts those sockets down when the deadline passes,
which wakes any blocked read (headers, chunked framing, TLS records alike).
Callers also check the clock between chunks.

A host the registry chose (a redirect target, a token realm) may be reached
only at public addresses. The check is made on the address we connect to:
the name is resolved once, every non-public address is dropped, and the
socket connects to an address from that checked list, so a DNS answer that
changes between a check and the connect (DNS rebinding) cannot slip through.
A pooled connection reused for such a host has its peer address checked
before anything is sent on it.

urllib3 has no resolver hook, so the connection classes override
``_new_conn``, the one method through which urllib3 opens a socket.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from attestor.registry._hosts import is_public_address

__all__ = ["AddressRefused", "Deadline", "GuardedAdapter", "hop"]


class AddressRefused(NewConnectionError):
    """A host the registry chose resolved only to non-public addresses."""


class Deadline:
    """A point in time after which the registered sockets are shut down.

    Use as a context manager: leaving it releases the sockets it watches.
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._expires_at = clock() + seconds
        self._lock = threading.Lock()
        self._socks: dict[int, socket.socket] = {}
        self._closed = False
        self._fired = False
        _WATCHDOG.arm(self)

    @property
    def expires_at(self) -> float:
        """The deadline on the ``time.monotonic`` clock."""
        return self._expires_at

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self._expires_at - self._clock()

    @property
    def closed(self) -> bool:
        """Whether the exchange is over (nothing is watched any more)."""
        return self._closed

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (or the watchdog fired)."""
        return self._fired or self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down when the deadline passes.

        A duplicate descriptor is kept, so shutting down never hits a
        descriptor number that was closed and reused meanwhile.
        """
        fd = sock.fileno()
        if fd < 0:
            return
        with self._lock:
            if self._closed or fd in self._socks:
                return
            dup = socket.socket(fileno=os.dup(fd))
            self._socks[fd] = dup
            fired = self._fired
        if fired or self.remaining() <= 0:
            self._fire()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            socks = list(self._socks.values())
        for dup in socks:
            with contextlib.suppress(OSError):
                dup.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop watching: release the duplicated descriptors."""
        with self._lock:
            self._closed = True
            socks, self._socks = list(self._socks.values()), {}
        for dup in socks:
            dup.close()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Queued deadlines above which closed ones are dropped from the queue.
_PRUNE_AT = 1024


class _Watchdog:
    """One thread that fires deadlines in time order (not a timer per request)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            if len(self._heap) >= _PRUNE_AT:
                # Most deadlines end closed long before they expire (an hour
                # for a large blob): drop those instead of keeping them queued.
                self._heap = [entry for entry in self._heap if not entry[2].closed]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.expires_at, next(self._seq), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="registry-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._cond:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
                    continue
            # A deadline closed meanwhile watches nothing: firing it is a no-op.
            for deadline in due:
                deadline._fire()  # noqa: SLF001 - the watchdog is the deadline's partner

    def after_fork(self) -> None:
        # The thread does not survive fork(); the child starts its own on demand.
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.after_fork)


@dataclass(frozen=True)
class _Hop:
    deadline: Deadline | None
    public_only: bool


_CURRENT: threading.local = threading.local()


@contextlib.contextmanager
def hop(deadline: Deadline | None, *, public_only: bool) -> Iterator[None]:
    """Apply ``deadline`` and the address rule to connections made in this block."""
    previous = getattr(_CURRENT, "hop", None)
    _CURRENT.hop = _Hop(deadline, public_only)
    try:
        yield
    finally:
        _CURRENT.hop = previous


def _current() -> _Hop | None:
    current: _Hop | None = getattr(_CURRENT, "hop", None)
    return current


def _public_peer(sock: socket.socket) -> bool:
    try:
        peer = sock.getpeername()[0]
        return is_public_address(ipaddress.ip_address(peer.split("%", 1)[0]))
    except (OSError, ValueError, IndexError):
        return False


def _connect_public(conn: HTTPConnection) -> socket.socket:
    """Resolve ``conn.host`` once and connect only to one of its public addresses."""
    try:
        infos = socket.getaddrinfo(conn.host, conn.port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NameResolutionError(conn.host, conn, e) from e
    allowed = [
        info
        for info in infos
        if is_public_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
    ]
    if not allowed:
        raise AddressRefused(conn, f"{conn.host} resolves to no public address")
    error: OSError | None = None
    for family, kind, proto, _name, address in allowed:
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(conn.timeout)
            sock.connect(address)
        except TimeoutError as e:
            sock.close()
            raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from e
        except OSError as e:
            sock.close()
            error = e
            continue
        if not _public_peer(sock):  # belt and braces: what we are connected to now
            sock.close()
            raise AddressRefused(conn, f"{conn.host} connected to a non-public address")
        return sock
    raise NewConnectionError(conn, f"failed to connect to {conn.host}: {error}")


def _open(conn: HTTPConnection, default: Callable[[], socket.socket]) -> socket.socket:
    current = _current()
    sock = _connect_public(conn) if current is not None and current.public_only else default()
    if current is not None and current.deadline is not None:
        current.deadline.watch(sock)
    return sock


def _reuse(conn: HTTPConnection) -> None:
    current = _current()
    if current is None or conn.sock is None:
        return
    if current.public_only and not _public_peer(conn.sock):
        conn.close()
        raise AddressRefused(conn, f"pooled connection to {conn.host} is not public")
    if current.deadline is not None:
        current.deadline.watch(conn.sock)


class _Conn(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _open(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _reuse(self)
        super().request(*args, **kwargs)


class _TLSConn(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _open(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _reuse(self)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Conn


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConn


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections obey :func:`hop`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with our connection classes."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
