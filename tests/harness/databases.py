# SPDX-License-Identifier: Apache-2.0
"""A throwaway database on the harness PostgreSQL, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = ["fresh_postgres_database"]


@contextmanager
def fresh_postgres_database(postgres_url: str, *, prefix: str = "t") -> Iterator[str]:
    """Create an empty database beside ``postgres_url``'s; yield its URL; drop it."""
    base = make_url(postgres_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            # FORCE: servers under test may still hold connections.
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
