# SPDX-License-Identifier: Apache-2.0
"""Each harness service starts, answers, and is a separate process we own."""

from __future__ import annotations

import json

import psycopg
import redis
import requests

from tests.harness.services import Containerd, Postgres, Redis, Registry


def test_postgres_answers_select_1(postgres: Postgres, postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://attestor@127.0.0.1:")
    assert postgres_url.endswith("/attestor")
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row == ("attestor", "attestor")


def test_redis_answers_ping(redis_server: Redis, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set("harness", b"ok")
        assert client.get("harness") == b"ok"
    finally:
        client.close()


def test_registry_answers_v2(registry: Registry) -> None:
    assert registry.url == f"http://{registry.host}"
    resp = requests.get(f"{registry.url}/v2/", timeout=5)
    assert resp.status_code == 200
    assert json.loads(resp.content) == {}


def test_containerd_answers_version(containerd: Containerd) -> None:
    out = containerd.ctr("version").stdout
    assert "Server:" in out
    plugins = containerd.ctr("plugins", "ls").stdout
    overlay = [line for line in plugins.splitlines() if "overlayfs" in line]
    assert overlay
    assert overlay[0].split()[-1] == "ok"
    plugin_ids = {line.split()[1] for line in plugins.splitlines()[1:] if line.strip()}
    assert "cri" not in plugin_ids
