# SPDX-License-Identifier: Apache-2.0
"""Deliverer: ordering, ack only after success, backoff, rejected records."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.spool import Backoff, Deliverer, Spool, SpoolEntry
from attestor.errors import ConfigError, InvalidInput, Unavailable, UpstreamError


class FlakyReceiver:
    """A receiver that dedupes by record id, like the server, and fails on demand."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or Unavailable("server down", retry_after=0)
        self.received: list[int] = []
        self.seen: set[int] = set()
        self.calls = 0
        self.refuse: set[int] = set()

    def __call__(self, batch: Sequence[SpoolEntry]) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        ns = [int(e.record["n"]) for e in batch]
        if self.refuse & set(ns):
            raise InvalidInput(f"bad record in {ns}")
        for n in ns:
            if n not in self.seen:
                self.seen.add(n)
                self.received.append(n)


def _fill(spool: Spool, count: int) -> None:
    for n in range(count):
        spool.put({"n": n})


def test_fails_n_times_then_delivers_everything_once_in_order(tmp_path: Path) -> None:
    receiver = FlakyReceiver(failures=3)
    with Spool.open(tmp_path) as spool:
        _fill(spool, 25)
        deliverer = Deliverer(
            spool, receiver, batch_records=10, backoff=Backoff(initial=1, jitter=0)
        )
        now = 0.0
        delays = []
        for _ in range(3):
            result = deliverer.drain(now)
            assert result.delivered == 0 and isinstance(result.error, Unavailable)
            assert result.retry_at is not None
            delays.append(result.retry_at - now)
            # Before the retry time nothing is attempted.
            calls = receiver.calls
            assert deliverer.drain(now).delivered == 0
            assert receiver.calls == calls
            now = result.retry_at
        assert delays == [1.0, 2.0, 4.0]
        assert len(spool) == 25  # nothing acked while failing
        result = deliverer.drain(now)
        assert result.drained and result.delivered == 25
        assert deliverer.failures == 0
        assert len(spool) == 0
    assert receiver.received == list(range(25))
    assert receiver.calls == 3 + 3  # three failures, then batches of 10, 10, 5


def test_crash_after_send_before_ack_is_deduped_by_receiver(tmp_path: Path) -> None:
    receiver = FlakyReceiver()
    with Spool.open(tmp_path) as spool:
        _fill(spool, 3)
        # Delivered, but the process "died" before acking: the records stay.
        receiver(list(spool.pending()))
    with Spool.open(tmp_path) as spool:
        Deliverer(spool, receiver).drain(0.0)
        assert len(spool) == 0
    assert receiver.received == [0, 1, 2]
    assert receiver.calls == 2


def test_invalid_record_is_isolated_and_rejected(tmp_path: Path) -> None:
    receiver = FlakyReceiver()
    receiver.refuse = {2}
    with Spool.open(tmp_path) as spool:
        _fill(spool, 5)
        result = Deliverer(spool, receiver, batch_records=10).drain(0.0)
        assert (result.delivered, result.rejected, result.drained) == (4, 1, True)
        assert spool.stats().rejected == 1
    assert receiver.received == [0, 1, 3, 4]


def test_batches_respect_byte_limit(tmp_path: Path) -> None:
    sizes: list[int] = []

    def send(batch: Sequence[SpoolEntry]) -> None:
        sizes.append(len(batch))

    with Spool.open(tmp_path) as spool:
        _fill(spool, 6)
        one = next(iter(spool.pending())).size
        Deliverer(spool, send, batch_bytes=2 * one).drain(0.0)
    assert sizes == [2, 2, 2]


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    receiver = FlakyReceiver(failures=1, error=Unavailable("busy", retry_after=30))
    with Spool.open(tmp_path) as spool:
        _fill(spool, 1)
        result = Deliverer(spool, receiver, backoff=Backoff(jitter=0)).drain(100.0)
    assert result.retry_at == 130.0


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=1, factor=2, maximum=10, jitter=0.5)
    rng = random.Random(1)  # noqa: S311 - test data
    assert all(10 <= backoff.delay(50, rng) <= 15 for _ in range(20))
    assert 1 <= backoff.delay(1, rng) <= 1.5
    with pytest.raises(ConfigError):
        Backoff(initial=0)


def test_run_delivers_in_background_and_stops(tmp_path: Path) -> None:
    receiver = FlakyReceiver(failures=1, error=UpstreamError("502"))
    stop, wake = threading.Event(), threading.Event()
    with Spool.open(tmp_path) as spool:
        deliverer = Deliverer(spool, receiver, backoff=Backoff(initial=0.01, jitter=0))
        thread = threading.Thread(
            target=deliverer.run, args=(stop,), kwargs={"wake": wake, "idle_interval": 0.01}
        )
        thread.start()
        try:
            _fill(spool, 4)
            wake.set()
            for _ in range(500):
                if len(receiver.received) == 4:
                    break
                stop.wait(0.01)
        finally:
            stop.set()
            wake.set()
            thread.join(5)
        assert not thread.is_alive()
        assert receiver.received == [0, 1, 2, 3]
        assert len(spool) == 0
