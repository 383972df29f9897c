# SPDX-License-Identifier: Apache-2.0
"""The revocation feed under 5,000 polling agents, next to /healthz.

Starts ``attestor serve --workers 2`` (SQLite in a temp dir by default, or
``--database-url``) as a subprocess on 127.0.0.1, with one agent token per
simulated agent (half of them due for a ``last_used_at`` refresh, as in steady
state where a token is refreshed at most once a minute: every other 30 s poll).

Each agent keeps its cursor and ETag and polls ``GET /v1/revocations/feed``
with If-None-Match once per ``--interval`` (open loop: requests are sent on a
fixed schedule of agents / interval per second, by a bounded thread pool).
After two thirds of the run an admin adds a revocation: every agent that
polls after it gets one 200 (a signed page with the new revocation); its next
poll (at the new cursor) gets one more 200, then 304s again.

Reported per phase: achieved rate, p50/p99 latency, and the server's CPU
seconds per 1,000 requests (utime + stime of the gunicorn master and workers
from /proc/<pid>/stat). The same generator first drives a bare ``/healthz``
at the same rate: that is the cost of HTTP + Flask alone, measured in the same
run. With ``wrk`` installed, short closed-loop runs of each, alternated
(``--wrk-rounds``), also give the ceiling (requests/s at full load on these
cores) and the server CPU per request; the target is a feed 304 costing at most
1.7x a ``/healthz`` (a ceiling of at least 0.6x), both from the same round.

Usage: .venv/bin/python bench/bench_feed.py [--agents 5000] [--interval 30]
       [--duration 30] [--baseline 10] [--wrk-rounds 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _host import print_host  # bench/_host.py, beside this file
from sqlalchemy import update

from attestor.config import load_settings
from attestor.store import tokens as token_store
from attestor.store.bootstrap import prepare
from attestor.store.db import make_engine, make_session_factory
from attestor.store.models import TokenModel

ADMIN_TOKEN = secrets.token_urlsafe(24)
HZ = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu_seconds(root_pid: int) -> float:
    """utime + stime of ``root_pid`` and its children (gunicorn master and workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        if pid == root_pid or ppid == root_pid:
            total += (int(fields[11]) + int(fields[12])) / HZ
    return total


@dataclass
class Agent:
    token: str
    cursor: int
    etag: str


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    late: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def line(self) -> str:
        n = len(self.latencies)
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if lat else 0.0
        rate = n / self.seconds if self.seconds else 0.0
        per_k = self.cpu / n * 1000 if n else 0.0
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.name:<28} {n:>6} req  {rate:>7.1f} req/s  p50 {p50:6.2f} ms  "
            f"p99 {p99:6.2f} ms  CPU {per_k:5.2f} s/1k req  [{codes}; late {self.late}]"
        )


def paced(
    port: int,
    phase: Phase,
    *,
    rate: float,
    duration: float,
    request: callable,  # type: ignore[valid-type]
    threads: int,
    server_pid: int,
) -> None:
    """Send request(j, conn) on a fixed schedule of ``rate``/s for ``duration`` s."""
    total = int(rate * duration)
    counter = iter(range(total))
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                j = next(counter, None)
            if j is None:
                break
            due = start + j / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                phase.late += 1
            sent = time.perf_counter()
            try:
                status = request(j, conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = -1
            phase.record(status, time.perf_counter() - sent)
        conn.close()

    cpu0 = server_cpu_seconds(server_pid)
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    phase.seconds = time.perf_counter() - max(t0, start)
    phase.cpu = server_cpu_seconds(server_pid) - cpu0


def get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str]
) -> tuple[int, bytes, str]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, response.getheader("ETag") or ""


def revoke(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(
        {"target": {"kind": "subject", "digest": f"sha256:{n:064x}"}, "reason": f"bench {n}"}
    )
    conn.request(
        "POST",
        "/v1/revocations",
        body=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 201:
        raise SystemExit(f"revocation failed: HTTP {response.status}")


@dataclass
class Ceiling:
    rate: float
    p99: str
    non2xx: str
    cpu_ms: float  # server CPU (utime + stime) per request, milliseconds

    def line(self) -> str:
        return (
            f"{self.rate:8.1f} req/s, p99 {self.p99:>8}, server CPU {self.cpu_ms:5.3f} ms/req"
            f" {self.non2xx}"
        )


def wrk_ceiling(
    port: int, path: str, headers: dict[str, str], seconds: int, server_pid: int
) -> Ceiling | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    args = [wrk, "-t2", "-c32", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    cpu0 = server_cpu_seconds(server_pid)
    out = subprocess.run(  # noqa: S603 - fixed local binary, 127.0.0.1 only
        [*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=120
    ).stdout
    cpu = server_cpu_seconds(server_pid) - cpu0
    lines = out.splitlines()
    rps = float(next((ln.split()[1] for ln in lines if ln.startswith("Requests/sec")), "0"))
    total = next((int(ln.split()[0]) for ln in lines if "requests in" in ln), 0)
    p99 = next((ln.split()[1] for ln in lines if ln.strip().startswith("99%")), "?")
    non2xx = next((ln.strip() for ln in lines if "Non-2xx" in ln), "")
    return Ceiling(rps, p99, non2xx, cpu / total * 1000 if total else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=30.0, help="poll interval, seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="feed phase, seconds")
    parser.add_argument("--baseline", type=float, default=10.0, help="/healthz phase, seconds")
    parser.add_argument("--revocations", type=int, default=50, help="revocations before the run")
    parser.add_argument("--threads", type=int, default=32, help="load generator threads")
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--wrk-rounds", type=int, default=3, help="alternated closed-loop pairs")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if args.duration > 300 or args.agents > 50_000 or args.wrk_rounds > 20:
        raise SystemExit("bounded benchmark: --duration <= 300, --agents <= 50000, rounds <= 20")
    print_host()
    rate = args.agents / args.interval

    tmp = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    env = {
        **os.environ,
        "ATTESTOR_DATA_DIR": str(tmp),
        "ATTESTOR_ADMIN_TOKEN": ADMIN_TOKEN,
        "ATTESTOR_LOG_LEVEL": "WARNING",
    }
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    now = datetime.now(UTC)
    prepare(settings, engine, now=now)
    factory = make_session_factory(engine)
    tokens: list[str] = []
    with factory.begin() as session:
        for i in range(args.agents):
            plaintext, _ = token_store.create_token(
                session, role="agent", agent_id=f"node-{i}", now=now
            )
            tokens.append(plaintext)
        # Steady state: a token's last_used_at is refreshed at most once a
        # minute, so with 30 s polls every other poll writes it. Each agent
        # polls about once in the run: odd agents write (never used), even
        # ones do not (used "in the future").
        even = [i for i in range(args.agents) if i % 2 == 0]
        session.execute(
            update(TokenModel)
            .where(TokenModel.agent_id.in_([f"node-{i}" for i in even]))
            .values(last_used_at=now + timedelta(days=1))
        )
    engine.dispose()

    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own console script
        [sys.executable, "-m", "attestor", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                if get(conn, "/healthz", {})[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        for n in range(args.revocations):
            revoke(port, n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, body, etag = get(
            conn, "/v1/revocations/feed?since=0", {"Authorization": f"Bearer {tokens[0]}"}
        )
        page = json.loads(base64.b64decode(json.loads(body)["payload"]))
        status, _, etag = get(
            conn,
            f"/v1/revocations/feed?since={page['latest']}",
            {"Authorization": f"Bearer {tokens[0]}"},
        )
        conn.close()
        # Every agent is caught up: cursor = latest, holding that page's ETag.
        agents = [Agent(t, page["latest"], etag) for t in tokens]

        def healthz(j: int, c: http.client.HTTPConnection) -> int:
            return get(c, "/healthz", {})[0]

        def poll(j: int, c: http.client.HTTPConnection) -> int:
            agent = agents[j % len(agents)]
            headers = {"Authorization": f"Bearer {agent.token}", "If-None-Match": agent.etag}
            code, data, new_etag = get(c, f"/v1/revocations/feed?since={agent.cursor}", headers)
            if code == 200:
                doc = json.loads(base64.b64decode(json.loads(data)["payload"]))
                # The ETag names the page after the OLD cursor; the agent learns
                # the next page's ETag on its next poll (one more 200, empty).
                agent.etag = new_etag if doc["next"] == agent.cursor else ""
                agent.cursor = doc["next"]
            return code

        base = Phase("/healthz (same rate)")
        paced(port, base, rate=rate, duration=args.baseline, request=healthz,
              threads=args.threads, server_pid=server.pid)  # fmt: skip
        steady = Phase("feed, caught up (304)")
        paced(port, steady, rate=rate, duration=args.duration * 2 / 3, request=poll,
              threads=args.threads, server_pid=server.pid)  # fmt: skip
        # Agents polling from here on see one new revocation: a signed 200 each.
        revoke(port, 10**6)
        after = Phase("feed, after a revocation")
        paced(port, after, rate=rate, duration=args.duration / 3, request=poll,
              threads=args.threads, server_pid=server.pid)  # fmt: skip
        both = Phase("feed, whole run")
        for part in (steady, after):
            both.latencies += part.latencies
            both.seconds += part.seconds
            both.cpu += part.cpu
            both.late += part.late
            for code, n in part.statuses.items():
                both.statuses[code] = both.statuses.get(code, 0) + n

        db = "PostgreSQL" if args.database_url else "SQLite"
        print(f"{args.agents} agents polling every {args.interval:g} s = {rate:.1f} req/s target; "
              f"server: attestor serve --workers 2 ({db}); "
              f"revocation added at t={args.duration * 2 / 3:.0f} s")  # fmt: skip
        for phase in (base, steady, after, both):
            print(phase.line())
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        code, data, _ = get(conn, "/v1/revocations/feed", auth)
        latest = json.loads(base64.b64decode(json.loads(data)["payload"]))["latest"]
        feed_path = f"/v1/revocations/feed?since={latest}"
        code, _, current = get(conn, feed_path, auth)
        check, _, _ = get(conn, feed_path, {**auth, "If-None-Match": current})
        conn.close()
        if check != 304:
            raise SystemExit(f"expected a 304 for the wrk run, got {check}")
        if shutil.which("wrk") is None:
            print("wrk not installed (apt-get install wrk): no closed-loop ceiling")
            return
        print("closed-loop ceiling, wrk -t2 -c32 on the same 2 cores (one agent token),")
        print(f"{args.wrk_rounds} rounds, /healthz and the feed 304 alternated:")
        ratios, cost = [], []
        for n in range(args.wrk_rounds):
            hz = wrk_ceiling(port, "/healthz", {}, args.wrk_seconds, server.pid)
            fd = wrk_ceiling(port, feed_path, {**auth, "If-None-Match": current},
                             args.wrk_seconds, server.pid)  # fmt: skip
            assert hz is not None and fd is not None
            print(f"  round {n + 1} /healthz (raw): {hz.line()}")
            print(f"  round {n + 1} feed 304:       {fd.line()}")
            ratios.append(fd.rate / hz.rate if hz.rate else 0.0)
            cost.append(fd.cpu_ms / hz.cpu_ms if hz.cpu_ms else 0.0)
        print(
            f"feed 304 ceiling / /healthz ceiling, same round: {min(ratios):.2f}-{max(ratios):.2f}x"
            f" (target >= 0.6x); server CPU per 304 / per /healthz: "
            f"{min(cost):.2f}-{max(cost):.2f}x (target <= 1.7x)"
        )
        print("(FACTS.md: a bare Flask 304 under gunicorn, 2 sync workers: ~5,300 req/s)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
