# SPDX-License-Identifier: Apache-2.0
"""Storage adapter: SQLAlchemy 2 models, Alembic migrations and query functions.

Functions take a ``Session`` and return frozen rows; nothing here is Active Record.
Modules: ``db`` (engines, migrations), ``models``, ``tokens``, ``jobs``,
``signing_keys``, ``bootstrap`` (start-up steps).
"""

__all__: list[str] = []
