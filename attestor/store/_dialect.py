# SPDX-License-Identifier: Apache-2.0
"""``INSERT ... ON CONFLICT`` for the two databases we run on.

Both SQLite (>= 3.24) and PostgreSQL implement it, but SQLAlchemy exposes it
only through each dialect's own ``insert``; this picks the right one so that
store functions stay dialect-free. Atomic upserts are what make concurrent
replays safe: a check-then-insert would race.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from attestor.errors import ConfigError

__all__ = ["upsert_insert"]


def upsert_insert(session: Session, model: type[Any]) -> Any:
    """The dialect's ``insert(model)``, which offers ``on_conflict_do_*``.

    Raises:
        ConfigError: The session is bound to a database other than SQLite or PostgreSQL.
    """
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(model)
    if name == "postgresql":
        return postgresql.insert(model)
    raise ConfigError(f"unsupported database dialect {name!r}")
