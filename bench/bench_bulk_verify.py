# SPDX-License-Identifier: Apache-2.0
"""Bulk verification throughput through the whole path, next to the raw ECDSA limit.

Starts a throwaway ``redis-server``, ``attestor serve --workers 2`` (gunicorn)
on SQLite (or a throwaway PostgreSQL cluster), and 1 then 2 ``attestor worker``
processes. For each worker count it submits distinct ECDSA P-256 envelopes
(SLSA layer statements) over HTTP in requests of ``--batch`` items, waits for
the jobs and reads every result back.
It prints the host line, envelopes/s end to end and per worker, the workers'
own phase (first chunk started -> last finished, from the job rows), the
in-process ``Verifier.verify_envelope`` rate (best of 3 passes) and the raw
``cryptography`` P-256 verify rate, measured in this run before the workers
start and again after them (the per worker ratios are printed against both).
Everything shares the machine's cores. CPU figures count each process tree (a
worker's rq scheduler child included), from the workers' start-up (imports
excluded) to the last result read back; 60,000 envelopes (~5 s per worker) keep
their idle costs (heartbeats, the scheduler) to a few percent, as in real bulk
runs.

    .venv/bin/python bench/bench_bulk_verify.py [--envelopes 60000] [--batch 10000]
        [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
from _host import print_host  # noqa: E402  # bench/_host.py, beside this file
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from redis import Redis  # noqa: E402
from rq.suspension import resume, suspend  # noqa: E402

from attestor.config import load_settings  # noqa: E402
from attestor.services.bulk_verify import load_snapshot  # noqa: E402
from attestor.services.keys import active_signer  # noqa: E402
from attestor.signing.dsse import sign_envelope  # noqa: E402
from attestor.statement import statement_bytes  # noqa: E402
from attestor.store.bootstrap import prepare  # noqa: E402
from attestor.store.db import make_engine, make_session_factory  # noqa: E402
from tests.harness.services import Postgres  # noqa: E402
from tests.unit.bulk._envelopes import digest, layer_statement  # noqa: E402

ATTESTOR = str(Path(sys.executable).with_name("attestor"))
TOKEN = "bench-admin-token-0123456789abcdef"  # noqa: S105 - throwaway server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant, plus what they reaped.

    Computed from the tree at the moment of the call, so a server worker that
    was replaced between two calls is still counted (in its parent's cutime).
    """
    try:
        return cpu_seconds(pid) + sum(tree_cpu_seconds(c) for c in children(pid))
    except FileNotFoundError:  # exited meanwhile; its parent's cutime has it
        return 0.0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def raw_ecdsa_rate(seconds: float = 1.5) -> float:
    """P-256 verifies per CPU second with ``cryptography`` (one core, best of 3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    message = b"x" * 2000
    sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    best = 0.0
    for _ in range(3):
        n, start = 0, time.process_time()
        while time.process_time() - start < seconds / 3:
            for _ in range(100):
                public.verify(sig, message, ec.ECDSA(hashes.SHA256()))
            n += 100
        best = max(best, n / (time.process_time() - start))
    return best


def make_envelopes(factory: Any, count: int, seed: str) -> list[dict[str, Any]]:
    """Distinct signed envelopes; one validated statement, varied subjects."""
    with factory() as session:
        signer = active_signer(session)
    base = layer_statement(digest("bench"))
    items = []
    for i in range(count):
        layer = digest(f"{seed}-{i}")
        doc = copy.deepcopy(base)
        doc["subject"][0]["digest"]["sha256"] = layer.removeprefix("sha256:")
        envelope = sign_envelope(statement_bytes(doc), signer.signer, keyid=signer.keyid)
        items.append({"envelope": json.loads(envelope.to_json()), "artifact_digest": layer})
    return items


def core_rate(factory: Any, items: list[dict[str, Any]], rounds: int = 3) -> float:
    """In-process ``verify_envelope`` per CPU second over ``items``, best of ``rounds``."""
    with factory() as session:
        verifier = load_snapshot(session).verifier
    assert verifier is not None  # noqa: S101 - prepare() made a key
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            verifier.verify_envelope(item["envelope"], artifact_digest=item["artifact_digest"])
        best = max(best, len(items) / (time.process_time() - start))
    return best


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def run(
    base: str,
    env: dict[str, str],
    items: list[dict[str, Any]],
    workers: int,
    batch: int,
    server_pid: int,
    overlap: bool,
) -> dict[str, float]:
    """Submit, wait, read back; wall-clock and CPU figures of one worker count."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {TOKEN}"
    redis = Redis.from_url(env["REDIS_URL"])
    if not overlap:
        # Workers start and import now but take no job until the submit is done,
        # so the figures separate the server's work from the workers'.
        suspend(redis)
    procs = [
        subprocess.Popen(  # noqa: S603 - our own console script
            [ATTESTOR, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(2.0)  # workers import and connect
        worker_cpu0 = sum(tree_cpu_seconds(p.pid) for p in procs)
        server_cpu0 = tree_cpu_seconds(server_pid)
        start = time.perf_counter()
        job_ids = []
        for offset in range(0, len(items), batch):
            body = json.dumps({"items": items[offset : offset + batch]}, separators=(",", ":"))
            response = http.post(
                f"{base}/v1/verifications",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            response.raise_for_status()
            job_ids.append(response.json()["job"]["id"])
        submitted = time.perf_counter()
        resume(redis)  # a suspended worker notices within 1 s
        jobs = {}
        while len(jobs) < len(job_ids):
            for job_id in job_ids:
                if job_id not in jobs:
                    job = http.get(f"{base}/v1/jobs/{job_id}", timeout=30).json()
                    if job["status"] in ("finished", "failed"):
                        jobs[job_id] = job
            time.sleep(0.2)
        finished = time.perf_counter()
        read = 0
        for job_id in job_ids:
            offset, total = 0, jobs[job_id]["progress"]["total"]
            while offset < total:
                page = http.get(
                    f"{base}/v1/jobs/{job_id}/results?offset={offset}&limit=1000", timeout=30
                ).json()
                read += sum(1 for r in page["items"] if r["status"] == "verified")
                offset += 1000
        elapsed = time.perf_counter() - start
        starts = [datetime.fromisoformat(j["started_at"]) for j in jobs.values()]
        ends = [datetime.fromisoformat(j["finished_at"]) for j in jobs.values()]
        phase = (max(ends) - min(starts)).total_seconds()
        failed = [j["error"] for j in jobs.values() if j["status"] != "finished"]
        if failed:
            raise SystemExit(f"jobs failed: {failed}")
        return {
            "elapsed": elapsed,
            "phase": phase,
            "submit": submitted - start,
            "read_back": time.perf_counter() - finished,
            "read": read,
            "worker_cpu": sum(tree_cpu_seconds(p.pid) for p in procs) - worker_cpu0,
            "server_cpu": tree_cpu_seconds(server_pid) - server_cpu0,
        }
    finally:
        resume(redis)
        redis.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=60_000, help="per worker count")
    parser.add_argument("--batch", type=int, default=10_000, help="items per request")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="start the workers before submitting (server and workers then share the cores)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the embedded default, or a throwaway PostgreSQL cluster (initdb + pg_ctl)",
    )
    args = parser.parse_args()
    print_host()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    redis_port, http_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "ATTESTOR_DATA_DIR": str(tmp / "var"),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ATTESTOR_ADMIN_TOKEN": TOKEN,
        "ATTESTOR_LOG_LEVEL": "WARNING",
    }
    postgres = Postgres().start() if args.database == "postgres" else None
    if postgres is not None:
        env["DATABASE_URL"] = postgres.url
    redis = subprocess.Popen(  # noqa: S603
        [
            redis_server,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    server = None
    try:
        settings = load_settings(env)
        engine = make_engine(settings.database_url)
        prepare(settings, engine, now=datetime.now(UTC))
        factory = make_session_factory(engine)
        print("signing envelopes ...", file=sys.stderr)
        sets = {n: make_envelopes(factory, args.envelopes, f"w{n}") for n in (1, 2)}
        raw = raw_ecdsa_rate()
        # The signed sets (120,000 envelopes) stay alive: freeze them, as the
        # worker freezes what it loaded, so collections do not re-scan them.
        gc.collect()
        gc.freeze()
        core = core_rate(factory, sets[1][:2000])
        engine.dispose()
        server = subprocess.Popen(  # noqa: S603
            [ATTESTOR, "serve", "--workers", "2", "--port", str(http_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{http_port}"
        wait_http(f"{base}/healthz")
        print(
            f"cores: {os.cpu_count()}  envelopes per run: {args.envelopes}  "
            f"request size: {args.batch} items  chunk: {settings.bulk_chunk_size} items  "
            f"database: {args.database}"
        )
        print(f"raw cryptography ECDSA P-256 verify:      {raw:6.0f} /CPU s")
        print(f"Verifier.verify_envelope in-process: {core:6.0f} /CPU s ({core / raw:.0%} of raw)")
        end_to_end, per_cpu_of = {}, {}
        for workers in (1, 2):
            r = run(base, env, sets[workers], workers, args.batch, server.pid, args.overlap)
            if r["read"] != args.envelopes:
                raise SystemExit(f"expected {args.envelopes} verified results, read {r['read']}")
            end_to_end[workers] = args.envelopes / r["elapsed"]
            per_cpu = per_cpu_of[workers] = args.envelopes / r["worker_cpu"]
            print(
                f"{workers} RQ worker(s): end to end {end_to_end[workers]:6.0f} /s "
                f"({end_to_end[workers] / workers:5.0f} /s per worker); "
                f"per worker CPU second {per_cpu:5.0f} /s ({per_cpu / raw:.0%} of raw); "
                f"worker phase {args.envelopes / r['phase']:5.0f} /s"
            )
            print(
                f"    {r['elapsed']:.1f} s for {r['read']:.0f} results: "
                f"submit {r['submit']:.1f} s, "
                f"read back {r['read_back']:.1f} s; CPU: workers {r['worker_cpu']:.1f} s, "
                f"server {r['server_cpu']:.1f} s"
            )
        print(f"scaling 1 -> 2 workers, end to end: {end_to_end[2] / end_to_end[1]:.2f}x")
        # On a shared host the raw rate drifts during the run: measure it again
        # so that the per worker ratios can be read against both ends.
        raw_end = raw_ecdsa_rate()
        print(
            f"raw ECDSA P-256 verify again after the runs: {raw_end:6.0f} /CPU s; per worker "
            f"CPU second against it: 1 worker {per_cpu_of[1] / raw_end:.0%}, "
            f"2 workers {per_cpu_of[2] / raw_end:.0%}"
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
