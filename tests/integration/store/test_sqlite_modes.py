# SPDX-License-Identifier: Apache-2.0
"""The SQLite database and its journal files are private to the server's user (0600)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from attestor.store.db import make_engine, upgrade


@pytest.fixture
def usual_umask() -> Iterator[None]:
    # The common default: files 0644 unless the creator asks for less.
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_database_and_its_wal_files_are_0600(tmp_path: Path, usual_umask: None) -> None:
    db = tmp_path / "attestor.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM jobs"))
            # The -wal and -shm files exist while a connection is open.
            assert _mode(db) == 0o600
            assert _mode(tmp_path / "attestor.db-wal") == 0o600
            assert _mode(tmp_path / "attestor.db-shm") == 0o600
    finally:
        engine.dispose()


def test_a_rollback_journal_gets_the_database_mode(tmp_path: Path, usual_umask: None) -> None:
    db = tmp_path / "attestor.db"
    make_engine(f"sqlite:///{db}").dispose()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        # The journal exists while the write transaction is open.
        assert _mode(tmp_path / "attestor.db-journal") == 0o600
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_database_left_world_readable_by_an_older_version_is_narrowed(
    tmp_path: Path, usual_umask: None
) -> None:
    db = tmp_path / "attestor.db"
    sqlite3.connect(db).close()
    wal = tmp_path / "attestor.db-wal"
    wal.write_bytes(b"")
    os.chmod(db, 0o644)
    os.chmod(wal, 0o664)
    make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600
    assert _mode(wal) == 0o600


def test_a_second_engine_keeps_the_locks_of_open_connections(tmp_path: Path) -> None:
    # POSIX record locks belong to the process and file: closing any fd on the
    # database file drops every lock this process holds on it, so a second
    # make_engine (one per app, one per policy source...) must not open the file.
    db = tmp_path / "attestor.db"
    sqlite3.connect(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        make_engine(f"sqlite:///{db}").dispose()
        probe = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
            "try:\n"
            "    c.execute('BEGIN EXCLUSIVE')\n"
            "except sqlite3.OperationalError as e:\n"
            "    print(e)\n"
            "else:\n"
            "    print('acquired')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(db)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == "database is locked"
    finally:
        holder.close()
