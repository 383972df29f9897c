# SPDX-License-Identifier: Apache-2.0
"""Engines, sessions and schema migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy
timeout, set on every new DBAPI connection; its file is created (or narrowed
to) mode 0600 before the first connection, and SQLite gives its ``-wal``,
``-shm`` and ``-journal`` files the mode of the database file. PostgreSQL
goes through psycopg 3.
Library errors are translated to :mod:`attestor.errors` here so that callers
never catch SQLAlchemy exceptions.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import Unavailable

__all__ = [
    "current_revision",
    "make_engine",
    "make_session_factory",
    "ping",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Milliseconds a SQLite writer waits for a lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(database_url: str) -> Engine:
    """Create an engine for a URL validated by :func:`attestor.config.load_settings`.

    Args:
        database_url: ``sqlite:///...`` or ``postgresql+psycopg://...``.

    Returns:
        The engine; no connection is opened yet.
    """
    engine = create_engine(database_url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_file(Path(database))
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _private_sqlite_file(path: Path) -> None:
    # The database holds token hashes, envelopes and the audit trail; sqlite3
    # would create it 0644 under the usual umask. Creating it first, 0600,
    # is enough for the journal files: SQLite copies the database file's mode
    # to its -wal, -shm and -journal files when it creates them.
    # An existing file is never opened here: POSIX record locks belong to the
    # process, and closing any descriptor of the file would drop the locks of
    # this process's open SQLite connections to it (a second engine on the
    # same file, as several apps or a policy source in one process make).
    if not path.parent.is_dir():
        return  # sqlite3 reports the missing directory itself
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        try:
            info = os.stat(path)
            # A file made by an older version (0644) is narrowed too, when it is ours.
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
        except OSError:
            return  # sqlite3 will say what is wrong on connect
    except PermissionError:
        return  # not ours to write: sqlite3 will say so on connect
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        try:
            info = os.lstat(sidecar)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(sidecar, stat.S_IMODE(info.st_mode) & 0o700)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (API threads) proceed while a job writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory; use ``with factory.begin() as session:``."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py runs on the engine we pass instead of reading a URL from an ini file.
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` programmatically.

    Raises:
        Unavailable: The database cannot be reached or the migration failed.
    """
    try:
        command.upgrade(_alembic_config(engine), revision)
    except SQLAlchemyError as e:
        raise Unavailable(f"database migration failed: {type(e).__name__}") from e


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` when it was never migrated.

    Raises:
        Unavailable: The database cannot be reached.
    """
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise Unavailable(f"database unreachable: {type(e).__name__}") from e


def ping(engine: Engine) -> None:
    """Check that the database answers ``SELECT 1``.

    Raises:
        Unavailable: It does not.
    """
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise Unavailable(f"database unreachable: {type(e).__name__}") from e
