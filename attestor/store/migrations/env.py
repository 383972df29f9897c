# SPDX-License-Identifier: Apache-2.0
"""Alembic environment: runs on the engine handed over by ``attestor.store.db``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from attestor.store.models import Base


def _run() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("use attestor.store.db.upgrade(engine); there is no alembic.ini")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things; batch mode recreates tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


_run()
