# SPDX-License-Identifier: Apache-2.0
"""Issuance through HTTP: attestations per second and single-layer latency.

Starts a throwaway docker-registry (tests/harness), builds and pushes two
20-layer images and one 1-layer image (tests/harness/images, offline umoci),
and runs ``attestor serve --workers 2`` on a temp data dir (SQLite). The first
request per image downloads and caches its blobs (not measured).

Issuance is idempotent per (image, key, policy version), so every measured
request is preceded by an untimed key rotation (``POST /v1/keys/rotate``):
the new active key makes each measured request a fresh issuance of every
layer (fetch from the blob cache, file manifest, statement, sign, store).

Printed, all from this run:

* throughput: attestations/s with one client and with two concurrent
  clients (two images), next to the raw ``cryptography`` signing rate of the
  server's active key over the PAE of one of its own statements (one core);
* latency: p50/p99 of a single-layer issuance request (fresh each time),
  beside a baseline measured in this process, on the server's own SQLite file,
  after each request: one database write (insert of an envelope-sized row and
  commit, with the server's engine settings) followed by one ECDSA P-256
  signature of the same key type over the PAE of a statement the server
  issued; and the ratio of the two p99s.

    .venv/bin/python bench/bench_issue.py [--rounds 6] [--latency-requests 100]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from _host import print_host  # bench/_host.py, beside this file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy import text  # noqa: E402

from attestor.dsse import pae  # noqa: E402
from attestor.store.db import make_engine  # noqa: E402
from tests.harness.images import ImageBuilder, PushedImage, RawLayer  # noqa: E402
from tests.harness.layers import Entry  # noqa: E402
from tests.harness.services import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token-" + os.urandom(8).hex()
LAYERS = 20
FILES_PER_LAYER = 8
FILE_BYTES = 128 * 1024  # 1 MiB of incompressible data per layer


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _layer(i: int, files: int) -> RawLayer:
    entries = tuple(Entry(f"l{i:02d}/f{j}.bin", data=os.urandom(FILE_BYTES)) for j in range(files))
    return RawLayer(entries, comment=f"layer {i}")


def _image(builder: ImageBuilder, registry: Registry, repo: str, layers: int) -> PushedImage:
    built = builder.build([_layer(i, FILES_PER_LAYER) for i in range(layers)], name=repo)
    return builder.push(built, registry, f"bench/{repo}", "v1")


class Server:
    """``attestor serve --workers 2`` as a child process, stopped by PID."""

    def __init__(self, workdir: Path, registry_host: str) -> None:
        policies = workdir / "policies"
        policies.mkdir()
        shutil.copy(ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
        self.data_dir = workdir / "var"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ATTESTOR_DATA_DIR": str(self.data_dir),
            "ATTESTOR_POLICY_DIR": str(policies),
            "ATTESTOR_INSECURE_REGISTRIES": registry_host,
            "ATTESTOR_ADMIN_TOKEN": ADMIN_TOKEN,
            "ATTESTOR_LOG_LEVEL": "WARNING",
        }
        self.log = (workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "attestor", "serve", "--port", str(self.port), "--workers", "2"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a slow first answer on a busy host
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"server did not start; see {workdir / 'server.log'}")

    def issue(self, image: str, session: requests.Session | None = None) -> dict[str, Any]:
        http = session or self.http
        resp = http.post(f"{self.url}/v1/attestations", json={"image": image}, timeout=120)
        if resp.status_code not in (200, 201):
            raise SystemExit(f"issue {image}: HTTP {resp.status_code} {resp.text[:300]}")
        body: dict[str, Any] = resp.json()
        body["_status"] = resp.status_code
        return body

    def issue_cold(self, image: str) -> dict[str, Any]:
        """First issuance of an image; layers over the inline scan budget go to a job."""
        resp = self.http.post(f"{self.url}/v1/attestations", json={"image": image}, timeout=120)
        if resp.status_code == 202:
            job_url = self.url + resp.json()["job"]["url"]
            deadline = time.monotonic() + 300
            while (job := self.http.get(job_url, timeout=30).json())["status"] not in (
                "finished",
                "failed",
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"issue {image}: job still {job['status']} after 300 s")
                time.sleep(0.05)
            if job["status"] != "finished":
                raise SystemExit(f"issue {image}: job failed: {str(job)[:300]}")
            # Scanned now: the same request is answered inline.
            return self.issue(image)
        if resp.status_code not in (200, 201):
            raise SystemExit(f"issue {image}: HTTP {resp.status_code} {resp.text[:300]}")
        body: dict[str, Any] = resp.json()
        return body

    def rotate(self) -> str:
        resp = self.http.post(
            f"{self.url}/v1/keys/rotate", json={"algorithm": "ecdsa-p256"}, timeout=30
        )
        resp.raise_for_status()
        return str(resp.json()["keyid"])

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.url}{path}", timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _fresh(server: Server, images: list[str]) -> tuple[float, int]:
    """Rotate (untimed), then issue ``images`` concurrently; (seconds, attestations)."""
    server.rotate()
    sessions = [requests.Session() for _ in images]
    for s in sessions:
        s.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    with ThreadPoolExecutor(len(images)) as pool:
        t0 = time.perf_counter()
        bodies = list(pool.map(server.issue, images, sessions))
        elapsed = time.perf_counter() - t0
    if any(b["_status"] != 201 for b in bodies):
        raise SystemExit("a measured request was not a fresh issuance (expected 201)")
    return elapsed, sum(len(b["attestations"]) for b in bodies)


def _signing_input(server: Server, keyid: str, envelope_url: str) -> tuple[Any, bytes, int]:
    """The server's private key ``keyid``, the PAE of one of its envelopes, the envelope size."""
    pem = (server.data_dir / "keys" / f"{keyid}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    response = server.get(envelope_url)
    envelope = response.json()
    return (
        key,
        pae(envelope["payloadType"], base64.b64decode(envelope["payload"])),
        len(response.content),
    )


def _raw_sign_rate(key: ec.EllipticCurvePrivateKey, data: bytes, seconds: float) -> float:
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        for _ in range(100):
            key.sign(data, ec.ECDSA(hashes.SHA256()))
        n += 100
    return n / (time.process_time() - t0)


class Baseline:
    """One database write then one signature, timed in this process (wall clock).

    The write goes to the server's own SQLite file through ``make_engine`` (WAL,
    synchronous=NORMAL, as the server), into a scratch table of this throwaway
    database: insert one row the size of a stored envelope, commit.
    """

    def __init__(self, server: Server, key: ec.EllipticCurvePrivateKey, data: bytes, size: int):
        self.engine = make_engine(f"sqlite:///{server.data_dir / 'attestor.db'}")
        with self.engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            )
        self.key, self.data, self.body = key, data, os.urandom(size)
        self.write: list[float] = []
        self.sign: list[float] = []

    def sample(self) -> None:
        t0 = time.perf_counter()
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_baseline (body) VALUES (:b)"), {"b": self.body})
        t1 = time.perf_counter()
        self.key.sign(self.data, ec.ECDSA(hashes.SHA256()))
        t2 = time.perf_counter()
        self.write.append((t1 - t0) * 1000)
        self.sign.append((t2 - t1) * 1000)

    def both(self) -> list[float]:
        return [w + s for w, s in zip(self.write, self.sign, strict=True)]


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="fresh issuances per mode")
    parser.add_argument("--latency-requests", type=int, default=100)
    args = parser.parse_args()
    print_host()

    with tempfile.TemporaryDirectory(prefix="bench-issue-") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        registry = Registry(work / "registry").start()
        server: Server | None = None
        try:
            builder = ImageBuilder(work / "images")
            big_a = _timed(
                "build+push 20-layer image a", lambda: _image(builder, registry, "a", LAYERS)
            )
            big_b = _timed(
                "build+push 20-layer image b", lambda: _image(builder, registry, "b", LAYERS)
            )
            small = _timed("build+push 1-layer image", lambda: _image(builder, registry, "one", 1))
            server = _timed("start server", lambda: Server(work, registry.host))
            images = [big_a.by_tag, big_b.by_tag, small.by_tag]
            cold = {}
            for image in images:
                t0 = time.perf_counter()
                first = server.issue_cold(image)
                cold[image] = time.perf_counter() - t0
            envelope_url = first["attestations"][0]["envelope_url"]

            one_client = [_fresh(server, [big_a.by_tag]) for _ in range(args.rounds)]
            two_clients = [_fresh(server, [big_a.by_tag, big_b.by_tag]) for _ in range(args.rounds)]
            key, data, size = _signing_input(server, server.rotate(), envelope_url)
            baseline = Baseline(server, key, data, size)
            latencies = []
            for _ in range(args.latency_requests):
                seconds, _count = _fresh(server, [small.by_tag])
                latencies.append(seconds * 1000)
                # Right after each request, so both see the same load on the host.
                baseline.sample()
            baseline.engine.dispose()
            raw = _raw_sign_rate(key, data, 1.0)
        finally:
            if server is not None:
                server.stop()
            registry.stop()

    def rate(samples: list[tuple[float, int]]) -> tuple[float, float]:
        rates = sorted(count / seconds for seconds, count in samples)
        return statistics.median(rates), rates[-1]

    layer_mib = FILES_PER_LAYER * FILE_BYTES / (1 << 20)
    print(
        f"image: {LAYERS} layers x {layer_mib:.0f} MiB (gzip, random data), blobs cached; "
        "server: attestor serve --workers 2 (gthread x4), SQLite; 2 cores shared with the client"
    )
    print("fresh issuance forced by rotating the signing key before each measured request")
    print(f"{'what':<58} {'median':>10} {'best':>10}")
    for label, samples in (
        ("attestations/s, 1 client, 20-layer image", one_client),
        ("attestations/s, 2 clients, two 20-layer images", two_clients),
    ):
        median, best = rate(samples)
        print(f"{label:<58} {median:>10,.0f} {best:>10,.0f}")
    print(f"{'raw ECDSA P-256 sign of the same key (1 core, ceiling)':<58} {raw:>10,.0f}")
    request_p99, base_p99 = _p99(latencies), _p99(baseline.both())
    print(
        f"latency of a 1-layer issuance request, {len(latencies)} requests: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {request_p99:.1f} ms"
    )
    print(
        f"same-run baseline, 1 database write + 1 signature ({size:,} B row, SQLite WAL; "
        f"ECDSA P-256), {len(baseline.write)} samples: "
        f"p50 {statistics.median(baseline.both()):.2f} ms, p99 {base_p99:.2f} ms "
        f"(write p50 {statistics.median(baseline.write):.2f} / p99 {_p99(baseline.write):.2f} ms, "
        f"sign p50 {statistics.median(baseline.sign):.3f} / p99 {_p99(baseline.sign):.3f} ms)"
    )
    base_p50 = statistics.median(baseline.both())
    print(
        f"request / baseline: p99 {request_p99 / base_p99:.1f}x, "
        f"p50 {statistics.median(latencies) / base_p50:.1f}x"
    )
    print(
        f"raw rates: {1000 / statistics.median(baseline.write):,.0f} database writes/s "
        f"(median, wall clock), {raw:,.0f} ECDSA P-256 signatures/s (1 core, CPU time)"
    )
    print(
        "first (cold) issuance, download + scan (a job past the inline scan budget): "
        + ", ".join(f"{name.rsplit('/', 1)[-1]} {s * 1000:.0f} ms" for name, s in cold.items())
    )


if __name__ == "__main__":
    main()
