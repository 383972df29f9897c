# SPDX-License-Identifier: Apache-2.0
"""Small local HTTP servers for what the offline registry cannot do: token and
Basic auth in front of the real registry, blob redirects to a CDN, token realms
on other hosts, servers that never answer or trickle, and bare listeners that
count connection attempts."""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD = "ci", "s3cret"


class AuthProxy(ThreadingHTTPServer):
    """Forwards GET/HEAD to ``upstream`` once the request carries valid auth."""

    daemon_threads = True

    def __init__(self, upstream: str, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.mode = mode  # "basic", "bearer" or "open" (no auth asked)
        self.token_requests: list[str] = []
        #: The Authorization header of every token request (None if absent).
        self.token_auth: list[str | None] = []
        #: The Authorization header of every other request (None if absent).
        self.seen_auth: list[str | None] = []
        self.requests = 0
        #: Bearer mode: the realm to name (default: our own /token).
        self.realm: str | None = None
        #: When set, authorized blob GETs are redirected to ``blob_redirect + path``.
        self.blob_redirect: str | None = None
        #: When set, every answer carries this ``Set-Cookie`` header.
        self.set_cookie: str | None = None
        #: The Cookie header of every request (None if absent).
        self.seen_cookies: list[str | None] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: AuthProxy

    def log_message(self, *args: object) -> None:
        pass

    def _basic_ok(self) -> bool:
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if self.server.set_cookie is not None:
            self.send_header("Set-Cookie", self.server.set_cookie)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.seen_cookies.append(self.headers.get("Cookie"))
        if url.path == "/token":
            query = parse_qs(url.query)
            scope = query.get("scope", [""])[0]
            self.server.token_requests.append(scope)
            self.server.token_auth.append(self.headers.get("Authorization"))
            if not self._basic_ok() or query.get("service") != ["test-registry"]:
                self._reply(401)
                return
            self._reply(
                200, b'{"token": "tok %s"}' % scope.encode(), {"Content-Type": "application/json"}
            )
            return
        self.server.requests += 1
        self.server.seen_auth.append(self.headers.get("Authorization"))
        repo = url.path.removeprefix("/v2/").split("/manifests/")[0].split("/blobs/")[0]
        scope = f"repository:{repo}:pull"
        if self.server.mode == "basic":
            ok = self._basic_ok()
            challenge = 'Basic realm="test"'
        else:
            ok = self.server.mode == "open" or (
                self.headers.get("Authorization") == f"Bearer tok {scope}"
            )
            realm = self.server.realm or f"http://{self.server.host}/token"
            challenge = f'Bearer realm="{realm}",service="test-registry",scope="{scope}"'
        if not ok:
            self._reply(401, b"{}", {"WWW-Authenticate": challenge})
            return
        if self.server.blob_redirect is not None and "/blobs/" in url.path:
            self._reply(307, b"", {"Location": self.server.blob_redirect + self.path})
            return
        conn = http.client.HTTPConnection(self.server.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept",)}
        conn.request(self.command, self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        passed = {
            k: v
            for k, v in resp.getheaders()
            if k.lower() in ("content-type", "docker-content-digest")
        }
        conn.close()
        self._reply(resp.status, body, passed)


@contextlib.contextmanager
def auth_proxy(upstream: str, mode: str) -> Iterator[AuthProxy]:
    server = AuthProxy(upstream, mode)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A listening socket that never accepts: connects succeed, answers never come."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redirector(ThreadingHTTPServer):
    """Answers every GET with a redirect to ``target(path)``."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _RedirectHandler)
        self.target = target

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _RedirectHandler(BaseHTTPRequestHandler):
    server: Redirector

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        location = self.server.target.replace("{path}", self.path).replace(
            "{self}", self.server.host
        )
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def redirector(target: str) -> Iterator[Redirector]:
    server = Redirector(target)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _StatusHandler(BaseHTTPRequestHandler):
    status = 503

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def failing_server() -> Iterator[str]:
    """Answers every GET with HTTP 503."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _StallHandler(BaseHTTPRequestHandler):
    """``/v2/`` answers 200 with half a body and then stalls; anything else gets
    a Bearer challenge whose realm is ``server.realm`` (e.g. a silent server)."""

    server: _StallServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if "/blobs/" in self.path:
            self.send_response(200)
            self.send_header("Content-Length", "2048")
            self.end_headers()
            self.wfile.write(b"x" * 1024)
            self.wfile.flush()
            self.server.release.wait(10)
            return
        challenge = f'Bearer realm="{self.server.realm}",service="s"'
        self.send_response(401)
        self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _StallServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, realm: str) -> None:
        super().__init__(("127.0.0.1", 0), _StallHandler)
        self.realm = realm
        self.release = threading.Event()


@contextlib.contextmanager
def stalling_server(realm: str) -> Iterator[str]:
    """Blob GETs send half their body and stall; other GETs ask for a token at ``realm``."""
    server = _StallServer(realm)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


class Listener:
    """A bare TCP listener on ``ip`` that accepts, counts and drops connections."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        self._sock = socket.socket()
        self._sock.bind((ip, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.ip = ip
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@contextlib.contextmanager
def listener(ip: str = "127.0.0.1") -> Iterator[Listener]:
    server = Listener(ip)
    try:
        yield server
    finally:
        server.close()


class _TrickleHandler(BaseHTTPRequestHandler):
    """Blob GETs: 200 with the headers, then the body one byte per ``interval``.
    Other GETs: the status line, then the headers one byte per ``interval``."""

    server: TrickleServer

    def log_message(self, *args: object) -> None:
        pass

    def _trickle(self, data: bytes) -> None:
        for i in range(len(data)):
            if self.server.stop.is_set():
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(self.server.interval)

    def do_GET(self) -> None:
        try:
            if "/blobs/" in self.path:
                self.send_response(200)
                self.send_header("Content-Length", str(self.server.size))
                self.end_headers()
                self.wfile.flush()
                self._trickle(b"x" * self.server.size)
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._trickle(b"X-Slow: " + b"y" * self.server.size + b"\r\n\r\n")
        except OSError:
            pass  # the client gave up: what we want
        finally:
            self.server.finished.append(time.monotonic())


class TrickleServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, size: int, interval: float) -> None:
        super().__init__(("127.0.0.1", 0), _TrickleHandler)
        self.size = size
        self.interval = interval
        self.stop = threading.Event()
        self.finished: list[float] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def trickle_server(size: int, interval: float = 0.1) -> Iterator[TrickleServer]:
    """Sends blobs (or, for other paths, headers) of ``size`` bytes a byte at a time."""
    server = TrickleServer(size, interval)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
