# SPDX-License-Identifier: Apache-2.0
"""The policies in force, as every replica and worker sees them: from the database.

:class:`DatabasePolicies` keeps the parsed :class:`PolicySet` and reads the
one-row policy generation counter at most once per ``check_interval_s``
(default 1 s); when the counter moved it reloads every current document.
A committed change is therefore in force everywhere within
``check_interval_s`` plus one reload (well under :data:`PROPAGATION_BOUND_S`,
5 s), without a restart.

Fail closed: when the counter cannot be read for longer than
``max_stale_s`` (default 5 s), :meth:`DatabasePolicies.current` raises instead of
answering with a set that may be out of date; a stored document the engine
no longer accepts also raises, rather than silently dropping a policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import ConfigError, InvalidInput, Unavailable
from attestor.policy import PolicySet, parse_policy
from attestor.store import policies as store

__all__ = ["PROPAGATION_BOUND_S", "DatabasePolicies"]

#: The documented bound: a committed policy change is in force everywhere within it.
PROPAGATION_BOUND_S = 5.0


class DatabasePolicies:
    """``current() -> PolicySet``, reloaded from the database when it changed.

    Thread-safe; one per process is enough (gunicorn threads and job threads share it).
    Build it on the process's own session factory, not on a second engine: on
    SQLite, ``make_engine`` opens and closes the database file, and that close
    drops the POSIX locks of every connection the process already holds on it.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        check_interval_s: float = 1.0,
        max_stale_s: float = PROPAGATION_BOUND_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < check_interval_s < max_stale_s:
            raise ValueError("need 0 < check_interval_s < max_stale_s")
        self._factory = session_factory
        self._interval = check_interval_s
        self._max_stale = max_stale_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._set: PolicySet | None = None
        self._generation = -1
        self._checked_at = float("-inf")

    @property
    def generation(self) -> int:
        """The policy generation of the set last loaded (-1 before the first load)."""
        return self._generation

    def current(self) -> PolicySet:
        """The policies in force now (at most ``check_interval_s`` behind the database).

        Raises:
            Unavailable: the database could not be read for ``max_stale_s``.
            ConfigError: a stored document no longer parses (fail closed).
        """
        now = self._monotonic()
        cached = self._set
        if cached is not None and now - self._checked_at < self._interval:
            return cached
        with self._lock:
            if self._set is not None and now - self._checked_at < self._interval:
                return self._set
            try:
                self._refresh()
            except SQLAlchemyError as e:
                if self._set is not None and now - self._checked_at < self._max_stale:
                    return self._set
                raise Unavailable("cannot read the policies from the database") from e
            self._checked_at = now
            assert self._set is not None  # noqa: S101 - _refresh sets it or raises
            return self._set

    def _refresh(self) -> None:
        with self._factory() as session:
            generation = store.generation(session)
            if self._set is not None and generation == self._generation:
                return
            rows = store.current_documents(session)
        policies = []
        for row in rows:
            source = f"database: policy {row.policy_id} version {row.version}"
            try:
                policies.append(parse_policy(row.document, source=source))
            except InvalidInput as e:
                raise ConfigError(f"stored policy no longer valid: {e.message}") from e
        self._set = PolicySet(tuple(policies), source=f"database (generation {generation})")
        self._generation = generation
