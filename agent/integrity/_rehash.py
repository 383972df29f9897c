# SPDX-License-Identifier: Apache-2.0
"""Per-directory sweep state and the "full re-hash every N checks" rule.

One rule for lower layers (:class:`agent.integrity.layers.LayerChecker`) and
upperdirs (:class:`agent.integrity.drift.UpperChecker`): a directory's first
check, and every N-th after it, hashes every file it needs; the others reuse
the state the previous check kept. The full re-hash catches a write that
restored the old timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from attestor.errors import ConfigError

__all__ = ["RehashSchedule"]

S = TypeVar("S")


class RehashSchedule(Generic[S]):
    """What each directory's last check kept, and when the next must be full."""

    def __init__(self, full_rehash_every: int) -> None:
        """Set N: every N-th check of a directory is full (1 = always).

        Raises:
            ConfigError: ``full_rehash_every`` is below 1.
        """
        if full_rehash_every < 1:
            raise ConfigError(f"full_rehash_every must be >= 1, got {full_rehash_every}")
        self._every = full_rehash_every
        self._kept: dict[Path, tuple[S, int]] = {}

    def next(self, directory: Path) -> tuple[S | None, bool]:
        """The state kept for ``directory`` (None before its first check), and
        whether this check must be full (then it must not reuse that state)."""
        kept = self._kept.get(directory)
        if kept is None:
            return None, True
        state, checks = kept
        return state, checks % self._every == 0

    def record(self, directory: Path, state: S) -> None:
        """Keep what a completed check of ``directory`` left, and count the check."""
        kept = self._kept.get(directory)
        self._kept[directory] = (state, 1 if kept is None else kept[1] + 1)

    def forget(self, directory: Path) -> None:
        """Drop the state of a directory that is no longer tracked."""
        self._kept.pop(directory, None)

    def directories(self) -> frozenset[Path]:
        """Directories with state."""
        return frozenset(self._kept)
