# SPDX-License-Identifier: Apache-2.0
"""Counters of committed changes made by this process, for in-process caches."""

from __future__ import annotations

import itertools

from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = ["CommitCounter"]


class CommitCounter:
    """Counts the commits of sessions that :meth:`mark` flagged as changing something.

    A cache records :attr:`value` when it loads and reloads once it differs, so a
    change committed by this process is seen by its next read, not after a TTL.
    A rolled-back session never counts.
    """

    def __init__(self) -> None:
        self._next = itertools.count(1)
        #: Only grows; ``next()`` on a count is atomic under the GIL.
        self.value = 0

    def mark(self, session: Session) -> None:
        """Count ``session``'s next commit."""
        event.listen(session, "after_commit", self._committed, once=True)

    def _committed(self, _session: Session) -> None:
        self.value = next(self._next)
