# SPDX-License-Identifier: Apache-2.0
"""`attestor serve` starts gunicorn, serves the docs and health, and stops by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.get(url, headers=headers, timeout=5)
    return r.status_code, r.content


def test_serve_starts_and_prints_a_one_time_admin_token(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ATTESTOR_", "DATABASE_URL", "REDIS_URL"))
    }
    env["ATTESTOR_DATA_DIR"] = str(tmp_path / "var")
    out = (tmp_path / "out").open("w+")
    err = (tmp_path / "err").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "attestor", "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=err,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(base + "/healthz")
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "err").read_text()) from None
                time.sleep(0.1)
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
        status, body = _get(base + "/openapi.json")
        assert status == 200
        assert "/v1/tokens" in json.loads(body)["paths"]
        token = (tmp_path / "out").read_text().strip().splitlines()[-1]
        assert _get(base + "/v1/tokens")[0] == 401
        status, body = _get(base + "/v1/tokens", token)
        assert status == 200
        assert json.loads(body)["tokens"][0]["role"] == "admin"
        stderr = (tmp_path / "err").read_text()
        assert f"http://127.0.0.1:{port}" in stderr
        # Logs are JSON lines, gunicorn's included; the access log has request ids.
        records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(r["logger"] == "gunicorn.error" for r in records)
        access = [r for r in records if r["logger"] == "attestor.access"]
        assert any(r["path"] == "/healthz" and r["status"] == 200 for r in access)
        assert all(len(r["request_id"]) == 32 for r in access)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
    # A restart finds the admin token and prints none.
    assert (tmp_path / "var" / "keys").is_dir()
