# SPDX-License-Identifier: Apache-2.0
"""The sweep's CPU and I/O budget: a token bucket on bytes hashed per second.

``scan_snapshot`` hashes a whole layer in one call, so the bucket is charged
after each layer with the bytes actually re-hashed (unchanged files cost
nothing) and the sweep sleeps off any debt before the next layer. Over a
sweep the rate converges to the budget; one very large layer can still burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from attestor.errors import ConfigError

__all__ = ["Budget", "BudgetConfig"]


@dataclass(frozen=True)
class BudgetConfig:
    """Limits on the integrity sweep.

    Attributes:
        bytes_per_second: average hashing rate; None means unlimited.
        burst_bytes: bucket size (bytes that may be hashed without waiting).
        pause_between_layers: seconds slept after every layer scan (yields the
            core to the workload even when nothing was hashed).
    """

    bytes_per_second: float | None = None
    burst_bytes: int = 64 * 1024 * 1024
    pause_between_layers: float = 0.0

    def __post_init__(self) -> None:
        if self.bytes_per_second is not None and self.bytes_per_second <= 0:
            raise ConfigError(f"bytes_per_second must be > 0, got {self.bytes_per_second}")
        if self.burst_bytes < 0 or self.pause_between_layers < 0:
            raise ConfigError("burst_bytes and pause_between_layers must be >= 0")


@dataclass
class Budget:
    """Token bucket state; ``clock`` and ``sleep`` are injected for tests."""

    config: BudgetConfig = field(default_factory=BudgetConfig)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(init=False, default=0.0)
    _last: float | None = field(init=False, default=None)
    #: Seconds slept so far (for the report and the bench).
    slept: float = field(init=False, default=0.0)

    def _refill(self) -> None:
        rate = self.config.bytes_per_second
        now = self.clock()
        if self._last is None:
            self._tokens = float(self.config.burst_bytes)
        elif rate is not None:
            self._tokens = min(
                float(self.config.burst_bytes), self._tokens + (now - self._last) * rate
            )
        self._last = now

    def spend(self, nbytes: int) -> float:
        """Charge ``nbytes`` hashed; sleep until the bucket is no longer in debt.

        Returns:
            The seconds slept.
        """
        waited = 0.0
        rate = self.config.bytes_per_second
        if rate is not None and nbytes > 0:
            self._refill()
            self._tokens -= nbytes
            if self._tokens < 0:
                waited = -self._tokens / rate
        waited += self.config.pause_between_layers
        if waited > 0:
            self.sleep(waited)
            self.slept += waited
            if rate is not None:
                self._refill()
        return waited
