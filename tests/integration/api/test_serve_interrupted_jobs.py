# SPDX-License-Identifier: Apache-2.0
"""`attestor serve` without Redis: a job whose server was SIGKILLed mid-run ends failed.

The slow job is a deferred issuance (``ATTESTOR_ISSUE_DEFER_ABOVE_BYTES=1``)
of an image on a local registry that serves its manifest and config and then
trickles the layer blob, so the job is running when the server is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from attestor.store.jobs import INTERRUPTED

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-admin-token-0123456789"
HEARTBEAT_S = 1


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
        "config": {},
    }
).encode()
LAYER_DIGEST = "sha256:" + "b" * 64
LAYER_SIZE = 64 * 1024 * 1024
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": LAYER_DIGEST,
                "size": LAYER_SIZE,
            }
        ],
    }
).encode()


class _SlowRegistry(BaseHTTPRequestHandler):
    """Manifest and config at once; the layer one byte at a time, never all of it."""

    stop: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "/manifests/" in self.path:
            self._send(MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        elif self.path.endswith("/blobs/" + _digest(CONFIG)):
            self._send(CONFIG, "application/octet-stream")
        elif self.path.endswith("/blobs/" + LAYER_DIGEST):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(LAYER_SIZE))
            self.end_headers()
            try:
                while not self.stop.wait(0.2):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
            except OSError:
                return  # the server reading it was killed
        elif self.path in ("/v2/", "/v2"):
            self._send(b"{}", "application/json")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Content-Digest", _digest(body))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def slow_registry() -> Iterator[str]:
    stop = threading.Event()
    handler = type("Handler", (_SlowRegistry,), {"stop": stop})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, tmp_path: Path, registry: str, name: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ATTESTOR_", "DATABASE_URL", "REDIS_URL"))
        }
        env |= {
            "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
            "ATTESTOR_ADMIN_TOKEN": TOKEN,
            "ATTESTOR_POLICY_DIR": str(REPO / "policies"),
            "ATTESTOR_INSECURE_REGISTRIES": registry,
            "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "1",
            "ATTESTOR_INLINE_HEARTBEAT_S": str(HEARTBEAT_S),
        }
        self.err = tmp_path / f"{name}.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attestor", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.err.open("w"),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.base + "/healthz", timeout=2)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(self.err.read_text()) from None
                time.sleep(0.1)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def kill(self) -> None:
        """SIGKILL the gunicorn workers, then the master: nothing gets to clean up."""
        master = self.proc.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in workers:
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _job(server: _Server, job_id: str) -> dict[str, Any]:
    r = server.request("GET", f"/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _start_slow_job(server: _Server, registry: str) -> str:
    r = server.request("POST", "/v1/attestations", json={"image": f"{registry}/slow/app:1"})
    assert r.status_code == 202, r.text
    job_id: str = r.json()["job"]["id"]
    deadline = time.monotonic() + 10
    while _job(server, job_id)["status"] != "running":
        assert time.monotonic() < deadline, _job(server, job_id)
        time.sleep(0.1)
    return job_id


def _wait_failed(server: _Server, job_id: str, *, since: float, bound: float) -> dict[str, Any]:
    while (job := _job(server, job_id))["status"] != "failed":
        assert job["status"] == "running", job
        assert time.monotonic() - since < bound, job
        time.sleep(0.1)
    return job


def test_a_job_killed_with_its_server_ends_failed_after_restart(
    tmp_path: Path, slow_registry: str
) -> None:
    first = _Server(tmp_path, slow_registry, "first")
    try:
        job_id = _start_slow_job(first, slow_registry)
        # Still running well past the stale threshold: the live server's heartbeat holds it.
        time.sleep(3 * HEARTBEAT_S + 1.5)
        assert _job(first, job_id)["status"] == "running"
        first.kill()
    finally:
        first.stop()
    killed_at = time.monotonic()

    second = _Server(tmp_path, slow_registry, "second")
    try:
        # Stale after 3 beats, found by the next pass of the new server's runner
        # (start-up itself leaves it: a heartbeat that recent may be a live replica's).
        job = _wait_failed(second, job_id, since=killed_at, bound=(3 + 2) * HEARTBEAT_S + 3)
    finally:
        second.stop()
    assert job["error"] == INTERRUPTED
    assert job["finished_at"] is not None


def test_a_job_of_a_killed_worker_is_failed_by_the_workers_that_remain(
    tmp_path: Path, slow_registry: str
) -> None:
    # gunicorn replaces a killed worker without a new start-up: the runners' periodic
    # pass, not prepare(), ends the job.
    server = _Server(tmp_path, slow_registry, "server")
    try:
        job_id = _start_slow_job(server, slow_registry)
        master = server.proc.pid
        (worker,) = map(int, Path(f"/proc/{master}/task/{master}/children").read_text().split())
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        job = _wait_failed(server, job_id, since=killed_at, bound=(3 + 2) * HEARTBEAT_S + 5)
    finally:
        server.stop()
    assert job["error"] == INTERRUPTED
