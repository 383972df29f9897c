# SPDX-License-Identifier: Apache-2.0
"""The newest migration revision shipped with the code, read from the migrations."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from attestor.store.db import MIGRATIONS_DIR


def head_revision() -> str | None:
    """Return the head revision of ``attestor/store/migrations``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()
