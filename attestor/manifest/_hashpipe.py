# SPDX-License-Identifier: Apache-2.0
"""sha256 on a second thread while the walk reads the next files.

The walk's Python and syscalls per file (scandir entry, open, fstat,
listxattr, read, close, the comparison) cost about as much as hashing a
20 KB file. hashlib releases the GIL while it hashes a buffer of 2 KiB or
more, so one worker thread that only hashes overlaps the two on a second
core. The walk keeps every read, check and decision: the worker gets bytes
already read and gives back their digest, and the walk applies each result
on its own thread (``then``), so nothing the walk keeps is touched by two
threads.

Bytes handed over and not yet hashed are bounded (:data:`MAX_PENDING`), so
memory stays bounded whatever the layer holds.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable

__all__ = ["MAX_PENDING", "HashPipe", "pipe_wanted"]

#: Bytes read and queued but not yet hashed, at most (the walk waits above it).
MAX_PENDING = 2 * 1024 * 1024

#: What the worker gives back: the walk's continuation, raw sha256 + capability,
#: and the bytes it hashed (or the error that stopped it).
_Done = tuple[Callable[[bytes], None] | None, bytes | BaseException, int]


def pipe_wanted() -> bool:
    """True when a whole core looks idle: the 1-minute load average is below cores - 1.

    The walk itself counts for about 1 in that average. With no idle core the
    two threads share one: every GIL hand-over then waits for the scheduler.
    On a shared 2-core host a layer of 20 KB files then took up to 1.3x as
    long as hashing inline (load average 6), and about 1.25x in a run that
    began at load average 1.4 (under the cores - 0.5 this gate first used).
    A busy node also keeps its cores for its workloads; the sweep then stays
    on one.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return cores > 1 and load < cores - 1


class HashPipe:
    """One hashing thread, started on first use; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[bytes, bytes, Callable[[bytes], None]] | None] = (
            queue.SimpleQueue()
        )
        self._done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0

    def submit(self, data: bytes, capability: bytes, then: Callable[[bytes], None]) -> None:
        """Hash ``data`` on the worker; ``then(sha256 + capability)`` runs later on this thread.

        It runs from a later :meth:`submit` or from :meth:`drain`, which the
        walk calls before it reads its results.
        """
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="manifest-sha256", daemon=True)
            self._thread.start()
        self._jobs.put((data, capability, then))
        self._pending += len(data)
        if self._pending > MAX_PENDING:
            # Wait for the worker to catch up (to half: fewer wake-ups).
            self._apply(MAX_PENDING // 2)

    def drain(self) -> None:
        """Wait for every queued hash and apply each result.

        Raises:
            RuntimeError: the worker failed (its error is the cause).
        """
        self._apply(0)

    def _apply(self, down_to: int) -> None:
        done = self._done
        while self._pending > down_to or not done.empty():
            then, result, size = done.get()
            self._pending -= size
            if then is None or not isinstance(result, bytes):
                raise RuntimeError("sha256 worker failed") from (
                    result if isinstance(result, BaseException) else None
                )
            then(result)

    def close(self) -> None:
        """Stop the worker; results not applied by :meth:`drain` are dropped."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        self._done = queue.SimpleQueue()
        self._pending = 0

    def _work(self) -> None:
        jobs, done, sha256 = self._jobs, self._done, hashlib.sha256
        while (job := jobs.get()) is not None:
            data, capability, then = job
            try:
                done.put((then, sha256(data).digest() + capability, len(data)))
            except BaseException as e:  # noqa: BLE001 - handed to the walk, which raises it
                done.put((None, e, len(data)))
