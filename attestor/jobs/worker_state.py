# SPDX-License-Identifier: Apache-2.0
"""What a worker process builds once and every job it runs uses: settings, engine, Redis.

``attestor worker`` builds it at start-up and installs it; rq then calls our
entry points (``rq_entry``, ``rq_verify_chunk``, ``periodic_sweep_entry``) by
name with JSON arguments only, so they find it here. A process that runs them
without ``attestor worker`` (an rq worker started by hand, tests) has nothing
installed: each call then builds its state from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attestor.config import Settings, load_settings

if TYPE_CHECKING:  # imported when a state is built: the API process imports the runners too
    from redis import Redis
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "WorkerState",
    "build_worker_state",
    "install_worker_state",
    "installed_worker_state",
    "worker_state",
]


@dataclass(frozen=True, kw_only=True)
class WorkerState:
    """One worker process's settings, database engine and Redis connection."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    #: None when ``REDIS_URL`` is unset.
    redis: Redis | None

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()


def build_worker_state(settings: Settings) -> WorkerState:
    """Build the engine, session factory and Redis client (both connect lazily)."""
    from redis import Redis

    from attestor.store.db import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    return WorkerState(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        redis=Redis.from_url(settings.redis_url) if settings.redis_url else None,
    )


_installed: WorkerState | None = None


def install_worker_state(state: WorkerState) -> None:
    """Make ``state`` the one every job of this process uses (``attestor worker`` start-up)."""
    global _installed  # noqa: PLW0603 - one per process, set once at start-up
    _installed = state


def installed_worker_state() -> WorkerState | None:
    """The state ``attestor worker`` installed, or None."""
    return _installed


@contextmanager
def worker_state(settings: Settings | None = None) -> Iterator[WorkerState]:
    """The installed state; without one, a state built for this call and disposed after it.

    Args:
        settings: What to build from when nothing is installed; default, the environment's.

    Raises:
        ConfigError: nothing is installed and the environment's settings are invalid.
    """
    if _installed is not None:
        yield _installed
        return
    state = build_worker_state(settings if settings is not None else load_settings(os.environ))
    try:
        yield state
    finally:
        state.dispose()
