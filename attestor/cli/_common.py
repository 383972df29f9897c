# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the subcommands: settings and a migrated engine."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from attestor.config import Settings, load_settings
from attestor.store.bootstrap import ensure_dirs
from attestor.store.db import make_engine, upgrade

__all__ = ["migrated_engine", "now", "settings_from_env"]


def settings_from_env() -> Settings:
    """Load settings exactly as the server does.

    Raises:
        ConfigError: The configuration is invalid.
    """
    return load_settings(os.environ)


def migrated_engine(settings: Settings) -> Engine:
    """An engine on a database migrated to head.

    Raises:
        ConfigError: The data directory cannot be created.
        Unavailable: The database cannot be reached or migrated.
    """
    ensure_dirs(settings)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


def now() -> datetime:
    """The wall clock in UTC."""
    return datetime.now(UTC)
