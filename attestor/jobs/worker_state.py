# SPDX-License-Identifier: Apache-2.0
"""What a worker process builds once and every job it runs uses.

That is the settings, the database engine, Redis, and what the ``issue`` job
signs with (:class:`IssueState`: registry client, policy source, keyless
signer, the loaded active key). ``attestor worker`` builds it at start-up and
installs it; rq then calls our entry points (``rq_entry``, ``rq_verify_chunk``,
``periodic_sweep_entry``) by name with JSON arguments only, so they find it
here. A process that runs them without ``attestor worker`` (an rq worker
started by hand, tests) has nothing installed: each call then builds its
state from the environment. The in-process runner of ``attestor serve``
holds its own :class:`SharedIssueState`.

rq's worker here is a ``SimpleWorker`` (no fork per job), so every job of the
process uses these same objects: nothing in them may depend on one job. The
registry client keys its caches by what they hold and gives each exchange its
own deadline; the managed signer is re-chosen from the database per job.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attestor.config import Settings, load_settings
from attestor.services.context import IssuanceAdapters, adapters_from_settings
from attestor.services.policy_db import DatabasePolicies
from attestor.services.policy_source import LoadedPolicies, PolicySource

if TYPE_CHECKING:  # imported when a state is built: the API process imports the runners too
    from redis import Redis
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "IssueState",
    "SharedIssueState",
    "WorkerState",
    "build_issue_state",
    "build_worker_state",
    "install_worker_state",
    "installed_worker_state",
    "worker_state",
]


@dataclass(frozen=True, kw_only=True)
class IssueState:
    """What the ``issue`` job reuses across jobs: policies, registry client, signers.

    The registry credentials file and the keyless trust configuration are read
    when it is built, so a change to either takes effect at the next restart,
    as for the API of ``attestor serve``. What must follow changes at once is
    asked per job: the active key (from the database) and the keyless
    identity token (re-read by its token source).
    """

    #: Asked at the start of each job: the database's set (``DatabasePolicies``),
    #: so a policy change is in force within 5 s, without a restart.
    policies: PolicySource
    #: Registry client, blob cache, keyless signer, the loaded active key.
    adapters: IssuanceAdapters


def build_issue_state(
    settings: Settings, session_factory: sessionmaker[Session] | None = None
) -> IssueState:
    """Load the policies and build the registry client and signers.

    Raises:
        ConfigError: the policy directory is missing or holds an invalid policy,
            the credentials file is unusable, or keyless signing is misconfigured.
    """
    # The database's set, on the process's own engine; without one (tests of
    # the registry client alone) the policy directory, read now.
    policies: PolicySource = (
        DatabasePolicies(session_factory)
        if session_factory is not None
        else LoadedPolicies.load(settings.policy_dir)
    )
    return IssueState(
        policies=policies, adapters=adapters_from_settings(settings, policies=policies)
    )


class SharedIssueState:
    """One process's :class:`IssueState`: built by the first :meth:`get`, then shared.

    A process that runs only other jobs (bulk verification, sweeps) never
    builds it; ``attestor worker`` and the in-process runner's ``start`` call
    :meth:`get` at start-up, so a bad policy stops the start.
    """

    def __init__(
        self, settings: Settings, *, build: Callable[[Settings], IssueState] = build_issue_state
    ) -> None:
        self._settings = settings
        self._build = build
        self._state: IssueState | None = None
        self._lock = threading.Lock()

    def get(self) -> IssueState:
        """The state, built now if this is the first call (thread-safe).

        Raises:
            ConfigError: see :func:`build_issue_state`; the next call tries again.
        """
        state = self._state
        if state is None:
            with self._lock:
                state = self._state
                if state is None:
                    state = self._state = self._build(self._settings)
        return state


@dataclass(frozen=True, kw_only=True)
class WorkerState:
    """One worker process's settings, database engine, Redis connection and issue state."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    #: None when ``REDIS_URL`` is unset.
    redis: Redis | None
    #: Built on first use; ``attestor worker`` builds it at start-up.
    issue: SharedIssueState

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()


def build_worker_state(
    settings: Settings, *, build_issue: Callable[[Settings], IssueState] | None = None
) -> WorkerState:
    """Build the engine, session factory and Redis client (both connect lazily).

    The issue state is built on its first use (:class:`SharedIssueState`), by
    ``build_issue``.
    """
    from redis import Redis

    from attestor.store.db import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    return WorkerState(
        settings=settings,
        engine=engine,
        session_factory=factory,
        redis=Redis.from_url(settings.redis_url) if settings.redis_url else None,
        issue=SharedIssueState(
            settings,
            build=build_issue or functools.partial(build_issue_state, session_factory=factory),
        ),
    )


_installed: WorkerState | None = None


def install_worker_state(state: WorkerState | None) -> None:
    """Make ``state`` the one every job of this process uses (``attestor worker`` start-up).

    None uninstalls it: later calls build their own again.
    """
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
