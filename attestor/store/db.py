# SPDX-License-Identifier: Apache-2.0
"""Engines, sessions and schema migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy
timeout, set on every new DBAPI connection; PostgreSQL goes through psycopg 3.
Library errors are translated to :mod:`attestor.errors` here so that callers
never catch SQLAlchemy exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import Unavailable

__all__ = [
    "current_revision",
    "head_revision",
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
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


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


def head_revision() -> str | None:
    """The newest migration revision shipped with this code."""
    script = ScriptDirectory.from_config(_alembic_config_no_engine())
    return script.get_current_head()


def _alembic_config_no_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


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
