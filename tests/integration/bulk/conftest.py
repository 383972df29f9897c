# SPDX-License-Identifier: Apache-2.0
"""``database_url``: a fresh database on the harness PostgreSQL, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the harness PostgreSQL (dropped afterwards)."""
    base = make_url(postgres_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
