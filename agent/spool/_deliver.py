# SPDX-License-Identifier: Apache-2.0
"""Drain a :class:`~agent.spool.Spool` through a ``send(batch)`` callable.

Delivery is at-least-once: a record is acked only after ``send`` returned for
the batch holding it, so a crash between the two resends it. Together with
the receiver's dedupe by record id (the violation id is the idempotency key,
``POST /v1/violations``) that gives exactly-once end to end. Records are sent
in spool order; a failed batch is retried first, after an exponential backoff.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.spool._spool import Spool, SpoolEntry
from attestor.errors import ConfigError, Error, InvalidInput, Unavailable

__all__ = ["Backoff", "Deliverer", "DrainResult", "Sender"]

log = logging.getLogger(__name__)

#: Delivers one batch or raises :class:`attestor.errors.Error`. ``InvalidInput``
#: means the receiver refused the records themselves; any other error is
#: treated as transient.
Sender = Callable[[Sequence[SpoolEntry]], None]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with proportional jitter, in seconds."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    #: Fraction of the delay drawn at random and added (spreads a fleet's retries).
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial or self.jitter < 0:
            raise ConfigError(f"bad backoff {self}")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures (>= 1)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, failures - 1))
        return base + base * self.jitter * rng.random()


@dataclass(frozen=True)
class DrainResult:
    """What one :meth:`Deliverer.drain` did."""

    delivered: int
    rejected: int
    #: True when the spool was emptied (as of the start of the last batch).
    drained: bool
    #: The error that stopped this drain, if any; delivery resumes at ``retry_at``.
    error: Error | None = None
    retry_at: float | None = None


class Deliverer:
    """Sends pending records in order, in batches, with backoff on failure."""

    def __init__(
        self,
        spool: Spool,
        send: Sender,
        *,
        batch_records: int = 100,
        batch_bytes: int = 1024 * 1024,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if batch_records <= 0 or batch_bytes <= 0:
            raise ConfigError("batch_records and batch_bytes must be positive")
        self._spool = spool
        self._send = send
        self._batch_records = batch_records
        self._batch_bytes = batch_bytes
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._failures = 0
        self._retry_at = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failed attempts (0 after a success)."""
        return self._failures

    @property
    def retry_at(self) -> float:
        """The ``now`` before which :meth:`drain` sends nothing."""
        return self._retry_at

    def _next_batch(self) -> list[SpoolEntry]:
        batch: list[SpoolEntry] = []
        size = 0
        for entry in self._spool.pending(limit=self._batch_records):
            # Always take one record, even an oversized one, to make progress.
            if batch and size + entry.size > self._batch_bytes:
                break
            batch.append(entry)
            size += entry.size
        return batch

    def drain(self, now: float) -> DrainResult:
        """Send batches until the spool is empty or a send fails.

        ``now`` is a monotonic clock reading in seconds; before :attr:`retry_at`
        nothing is sent.
        """
        delivered = rejected = 0
        if now < self._retry_at:
            return DrainResult(0, 0, drained=False, retry_at=self._retry_at)
        while True:
            try:
                batch = self._next_batch()
                if not batch:
                    self._failures = 0
                    return DrainResult(delivered, rejected, drained=True)
                try:
                    self._send(batch)
                except InvalidInput as e:
                    if len(batch) == 1:
                        log.warning("receiver refused spool record %s: %s", batch[0].id, e.message)
                        self._spool.reject(batch[0].id)
                        rejected += 1
                        continue
                    # Find the refused record(s) without holding back the others.
                    ok, bad, error = self._send_one_by_one(batch)
                    delivered += ok
                    rejected += bad
                    if error is not None:
                        return self._failed(error, now, delivered, rejected)
                    continue
                self._spool.ack(*(entry.id for entry in batch))
            except Error as e:
                # A failed send or a failed ack: either way the records stay
                # pending and are sent again (the receiver dedupes).
                return self._failed(e, now, delivered, rejected)
            delivered += len(batch)
            self._failures = 0

    def _send_one_by_one(self, batch: Sequence[SpoolEntry]) -> tuple[int, int, Error | None]:
        """Send each record alone; stop at the first error that is not a refusal."""
        ok = bad = 0
        for entry in batch:
            try:
                try:
                    self._send([entry])
                except InvalidInput as e:
                    log.warning("receiver refused spool record %s: %s", entry.id, e.message)
                    self._spool.reject(entry.id)
                    bad += 1
                    continue
                self._spool.ack(entry.id)
            except Error as e:
                return ok, bad, e
            ok += 1
        return ok, bad, None

    def _failed(self, error: Error, now: float, delivered: int, rejected: int) -> DrainResult:
        self._failures += 1
        delay = self._backoff.delay(self._failures, self._rng)
        if isinstance(error, Unavailable):
            delay = max(delay, float(error.retry_after))
        self._retry_at = now + delay
        log.info(
            "delivery failed (%d in a row), retrying in %.1fs: %s",
            self._failures,
            delay,
            error.message,
        )
        return DrainResult(delivered, rejected, drained=False, error=error, retry_at=self._retry_at)

    def run(
        self,
        stop: threading.Event,
        *,
        wake: threading.Event | None = None,
        idle_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Drain until ``stop`` is set; ``wake`` (set after a put) skips the idle wait.

        A set ``wake`` does not cut a backoff short.
        """
        wake = wake or threading.Event()
        while not stop.is_set():
            wake.clear()
            result = self.drain(clock())
            if result.retry_at is not None:
                stop.wait(max(0.0, result.retry_at - clock()))
            else:
                wake.wait(idle_interval)
