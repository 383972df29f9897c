# SPDX-License-Identifier: Apache-2.0
"""Two ``attestor serve`` processes on one database, as replicas behind a Service."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness.databases import fresh_postgres_database

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """``attestor serve --workers 2``, stopped by PID."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attestor", "serve", "--workers", "2", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a slow first answer on a busy host
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(log.read_text()[-3000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A shared SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        yield f"sqlite:///{tmp_path / 'var' / 'shared.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@contextlib.contextmanager
def two_replicas(
    tmp_path: Path, database_url: str, **settings: str
) -> Iterator[tuple[Replica, Replica, str]]:
    """Two servers sharing one data directory and database; yields them and the admin token."""
    admin_token = secrets.token_urlsafe(24)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ATTESTOR_", "DATABASE_URL", "REDIS_URL"))
    }
    # One data directory (signing key files) and one database, as replicas share them.
    env.update(
        ATTESTOR_DATA_DIR=str(tmp_path / "var"),
        DATABASE_URL=database_url,
        ATTESTOR_ADMIN_TOKEN=admin_token,
        ATTESTOR_LOG_LEVEL="WARNING",
        **settings,
    )
    first = Replica(env, tmp_path / "a.log")
    try:
        second = Replica(env, tmp_path / "b.log")
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second, admin_token
    finally:
        second.stop()
        first.stop()
