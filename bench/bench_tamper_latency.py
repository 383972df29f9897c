# SPDX-License-Identifier: Apache-2.0
"""Time from a tamper on the host to the violation's arrival at the server.

Starts a throwaway registry and containerd (tests/harness), pushes the sample
image, serves the real server app on 127.0.0.1 (werkzeug, SQLite), runs a
container, then runs ``attestor-agent run`` as a separate process with a short
``--interval``. Each sample rewrites a lower-layer file on the host (a new
content each time, so each is a new finding) and polls ``GET /v1/violations``
until the server lists it. Host tampering raises no containerd event, so
with ``--no-watch`` the figure is bounded by the sweep interval (about
interval/2 + one incremental sweep + one POST); with ``--watch`` the inotify
watch triggers the sweep (debounce + sweep + POST). Both agents run in the
same run, one after the other, with the same interval and sampling; each
prints its peak RSS (VmHWM), beside the RSS of a fresh interpreter that only
imports ``agent.cli`` (what the agent holds before it does anything), measured
in the same run.

Usage (root, as the integration tests): .venv/bin/python bench/bench_tamper_latency.py
    [--samples 8] [--interval 5.0]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _host import print_host  # noqa: E402  # bench/_host.py, beside this file
from werkzeug.serving import make_server  # noqa: E402

from agent.containerd import ContainerdClient, resolve_image_layers  # noqa: E402
from attestor.api import create_app  # noqa: E402
from attestor.api._state import app_state  # noqa: E402
from attestor.config import load_settings  # noqa: E402
from attestor.store import tokens as token_store  # noqa: E402
from tests.harness.binaries import require_static  # noqa: E402
from tests.harness.images import ImageBuilder  # noqa: E402
from tests.harness.sample import sample_layers  # noqa: E402
from tests.harness.services import Containerd, Registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(Path(sys.executable).with_name("attestor-agent"))


def serve(work: Path, registry: Registry) -> tuple[str, str, str, Any]:
    """The real app on a loopback port: (url, agent token, admin token, stop)."""
    policies = work / "policies"
    policies.mkdir()
    shutil.copy(ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    settings = load_settings(
        {
            "ATTESTOR_DATA_DIR": str(work / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
        }
    )
    app = create_app(settings)
    state = app_state(app)
    with state.session_factory.begin() as s:
        agent, _ = token_store.create_token(s, role="agent", agent_id="bench", now=state.clock())
        admin, _ = token_store.create_token(s, role="admin", now=state.clock())
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()

    def stop() -> None:
        srv.shutdown()
        srv.server_close()
        state.engine.dispose()

    return f"http://127.0.0.1:{srv.server_port}", agent, admin, stop


def listed(url: str, admin: str, container: str) -> int:
    resp = requests.get(
        url + "/v1/violations",
        params={"container_id": container, "kind": "content"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    resp.raise_for_status()
    return len(resp.json()["items"])


def wait_count(url: str, admin: str, container: str, want: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listed(url, admin, container) >= want:
            return time.monotonic()
        time.sleep(0.01)
    raise SystemExit(f"no violation #{want} at the server within {timeout} s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def imports_rss_mb() -> float:
    """RSS of a fresh interpreter after ``import agent.cli`` (the agent's floor)."""
    code = (
        "import agent.cli\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmRSS:'): print(int(line.split()[1]) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return float(out)


def phase(
    work: Path,
    containerd: Containerd,
    url: str,
    token_file: Path,
    admin: str,
    cid: str,
    target: Path,
    *,
    watch: bool,
    args: argparse.Namespace,
) -> tuple[list[float], float]:
    """One agent process: (tamper -> listed seconds per sample, peak RSS MB)."""
    name = "watch" if watch else "no-watch"
    agent = subprocess.Popen(
        [AGENT, "run", "--containerd-address", containerd.address,
         "--namespace", containerd.namespace, "--server", url,
         "--token-file", str(token_file), "--state-dir", str(work / f"state-{name}"),
         "--interval", str(args.interval), "--log-level", "warning",
         "--watch" if watch else "--no-watch"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Warm-up: registration, attestations (issued or cached), the first
        # full sweep, and one violation through the whole pipeline; then let
        # a fresh agent's report of the standing tamper land before counting.
        before = listed(url, admin, cid)
        target.write_bytes(f"warm-up {name}\n".encode())
        wait_count(url, admin, cid, before + 1, timeout=120)
        time.sleep(2 * args.interval + 1)
        base = listed(url, admin, cid)
        samples = []
        for i in range(args.samples):
            # Start at a random phase of the sweep interval.
            time.sleep(args.interval * (os.urandom(1)[0] / 255))
            t0 = time.monotonic()
            target.write_bytes(f"tampered {name} {i}\n".encode())
            samples.append(wait_count(url, admin, cid, base + i + 1, timeout=60) - t0)
        return samples, peak_rss_mb(agent.pid)
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def summary(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (f"  {label:<28} p50 {statistics.median(ms):7.0f} ms   max {ms[-1]:7.0f} ms   "
            f"min {ms[0]:7.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    print_host()
    floor = imports_rss_mb()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per poll otherwise
    results: dict[bool, tuple[list[float], float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tamper-", dir="/tmp") as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        (work / "ctd").mkdir()
        registry = Registry(work / "registry").start()
        containerd = Containerd(work / "ctd").start()
        stop_server = None
        cid = "bench-" + uuid.uuid4().hex[:8]
        try:
            built = ImageBuilder(work / "images").build(
                sample_layers(require_static("busybox")), name="sample", cmd=["/bin/sh"]
            )
            image = ImageBuilder(work / "images").push(built, registry, "bench/sample").by_tag
            url, token, admin, stop_server = serve(work, registry)
            containerd.ctr("images", "pull", "--plain-http", image)
            containerd.ctr("run", "-d", "--snapshotter", "overlayfs", image, cid,
                           "/bin/sh", "-c", "sleep 600")  # fmt: skip
            with ContainerdClient(containerd.address, containerd.namespace) as client:
                base = resolve_image_layers(client, image).layers[0].snapshot_dir
            assert base is not None
            token_file = work / "token"
            token_file.write_text(token + "\n")
            target = base / "etc" / "hostname"
            for watch in (False, True):
                results[watch] = phase(work, containerd, url, token_file, admin, cid, target,
                                       watch=watch, args=args)  # fmt: skip
        finally:
            containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
            time.sleep(0.5)
            containerd.ctr("tasks", "delete", cid, check=False)
            containerd.ctr("containers", "delete", cid, check=False)
            if stop_server is not None:
                stop_server()
            containerd.stop()
            registry.stop()
    print(
        f"tamper on the host -> violation listed by the server, {args.samples} samples "
        f"each, agent --interval {args.interval} s (no containerd event for host writes):"
    )
    print(summary("--no-watch (interval only)", results[False][0]))
    print(summary("--watch (inotify)", results[True][0]))
    print(
        f"  bound without the watch: interval + sweep + POST = {args.interval * 1000:.0f} ms + ..."
    )
    for watch, label in ((False, "--no-watch"), (True, "--watch")):
        print(
            f"agent {label} peak RSS (VmHWM) {results[watch][1]:.1f} MB   (target < 60 MB; "
            f"same run, RSS after `import agent.cli` alone: {floor:.1f} MB)"
        )


if __name__ == "__main__":
    main()
