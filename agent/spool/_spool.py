# SPDX-License-Identifier: Apache-2.0
"""A durable on-disk outbox: one file per record, written by atomic rename.

Why one file per record rather than an append-only log: acknowledging is an
``unlink`` (no compaction, no rewriting of a log while it is appended to), a
crash can only leave a ``*.tmp`` file that was never renamed (deleted on
open), and a damaged record cannot hide the ones after it. Violations are rare
and small, so the cost (one file and two fsyncs per record) is affordable.

Write protocol (``put``): write ``<seq>.rec.tmp``, fsync it, rename to
``<seq>.rec``, fsync the directory; only then return the id (``put_many`` does
each step for the whole burst, so one journal commit covers it). So every id
returned to a caller is on disk and survives a crash or power loss. Each file
is also framed with its length and sha256 (``_framing``): a file that does not
check out is moved to ``corrupt/`` (kept for an operator, counted) and the
records around it are delivered normally.

The spool is bounded (:class:`SpoolLimits`). When it is full, ``put`` refuses
the record with :class:`~attestor.errors.Unavailable` and counts the drop in a
persisted counter, so a refusal is never silent and survives restarts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from agent._fs import TMP_SUFFIX, fsync_dir, write_atomic, write_synced
from agent.spool import _framing
from attestor.errors import ConfigError, InvalidInput, TooLarge, Unavailable

__all__ = ["Spool", "SpoolEntry", "SpoolLimits", "SpoolStats"]

_REC = ".rec"
_TMP = TMP_SUFFIX
_SEQ_WIDTH = 20
_LOCK = "lock"
_DROPPED = "dropped"
_CORRUPT = "corrupt"
_REJECTED = "rejected"


@dataclass(frozen=True)
class SpoolLimits:
    """Caps on what the spool holds."""

    #: Most records held; further puts are refused (and counted).
    max_records: int = 100_000
    #: Most payload bytes held; further puts are refused (and counted).
    max_bytes: int = 256 * 1024 * 1024
    #: Largest single record (its JSON encoding).
    max_record_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        if min(self.max_records, self.max_bytes, self.max_record_bytes) <= 0:
            raise ConfigError(f"spool limits must be positive, got {self}")


@dataclass(frozen=True)
class SpoolEntry:
    """One pending record. ``id`` orders records (oldest first)."""

    id: str
    record: Mapping[str, Any]
    size: int


@dataclass(frozen=True)
class SpoolStats:
    """Counters for heartbeats and metrics."""

    pending: int
    pending_bytes: int
    #: Records refused because the spool was full or a record too large (persisted).
    dropped: int
    #: Files found damaged and moved to ``corrupt/`` since this process opened the spool.
    quarantined: int
    #: Records the receiver refused as invalid, moved to ``rejected/`` (this process).
    rejected: int


def _encode(record: Mapping[str, Any]) -> bytes:
    if not isinstance(record, Mapping):
        raise InvalidInput(f"spool record must be a JSON object, got {type(record).__name__}")
    try:
        return json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"spool record is not JSON: {e}") from e


def _seq_of(name: str) -> int | None:
    stem = name[: -len(_REC)] if name.endswith(_REC) else ""
    if len(stem) == _SEQ_WIDTH and stem.isdigit():
        return int(stem)
    return None


class Spool:
    """The outbox. Thread-safe; one process per directory (an flock enforces it).

    Open it with :meth:`open`.
    """

    def __init__(self, directory: Path, limits: SpoolLimits, lock_fd: int) -> None:
        self._dir = directory
        self._limits = limits
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        #: id -> payload size, in id order (ids only grow within a process).
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._next_seq = 0
        self._dropped = 0
        self._quarantined = 0
        self._rejected = 0

    @classmethod
    def open(cls, directory: Path, *, limits: SpoolLimits | None = None) -> Spool:
        """Open (creating if needed) the spool in ``directory`` and recover it.

        Recovery deletes ``*.tmp`` files (writes that never completed) and
        indexes the ``*.rec`` files; their contents are checked when read.

        Raises:
            ConfigError: if the directory cannot be created or another process
                holds the spool.
        """
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise ConfigError(f"spool directory {directory} unusable: {e.strerror}") from e
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(lock_fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"spool {directory} is in use by another process") from e
            raise ConfigError(f"spool {directory}: cannot lock: {e.strerror}") from e
        spool = cls(directory, limits or SpoolLimits(), lock_fd)
        spool._recover()
        return spool

    def _recover(self) -> None:
        seqs: list[tuple[int, str, int]] = []
        for entry in os.scandir(self._dir):
            if entry.name.endswith(_TMP):
                os.unlink(entry.path)
                continue
            seq = _seq_of(entry.name)
            if seq is not None:
                seqs.append((seq, entry.name[: -len(_REC)], entry.stat().st_size))
        seqs.sort()
        for _, ident, size in seqs:
            self._sizes[ident] = size
            self._bytes += size
        self._next_seq = seqs[-1][0] + 1 if seqs else 0
        try:
            self._dropped = int((self._dir / _DROPPED).read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            self._dropped = 0
        fsync_dir(self._dir)

    @property
    def directory(self) -> Path:
        """Where the records live."""
        return self._dir

    def put(self, record: Mapping[str, Any]) -> str:
        """Store ``record`` durably and return its id.

        When this returns, the record is on disk (file and directory fsync'd).

        Raises:
            InvalidInput: if ``record`` is not a JSON object.
            TooLarge: if its encoding exceeds ``max_record_bytes`` (counted as a drop).
            Unavailable: if the spool is full (counted as a drop) or the disk
                write failed.
        """
        return self.put_many([record])[0]

    def put_many(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store several records durably, in order, with one directory fsync.

        Much faster than a loop of :meth:`put` for a burst (one journal commit
        instead of one per record). Records that do not fit are refused and
        counted; the others are stored and their ids are in the error's
        ``detail["stored"]``.

        Raises:
            InvalidInput: if a record is not a JSON object (nothing is stored).
            TooLarge: if a record exceeds ``max_record_bytes`` (counted as a drop).
            Unavailable: if the spool is full (counted as drops) or the disk
                write failed (nothing is stored).
        """
        frames = [_framing.encode(_encode(record)) for record in records]
        with self._mutex:
            accepted: list[tuple[str, bytes]] = []
            too_large = full = 0
            count, size = len(self._sizes), self._bytes
            for data in frames:
                if len(data) > self._limits.max_record_bytes + _framing.MAX_HEADER:
                    too_large += 1
                elif count >= self._limits.max_records or size + len(data) > self._limits.max_bytes:
                    full += 1
                else:
                    ident = f"{self._next_seq + len(accepted):0{_SEQ_WIDTH}d}"
                    accepted.append((ident, data))
                    count, size = count + 1, size + len(data)
            try:
                self._write_batch(accepted)
            except OSError as e:
                raise Unavailable(f"spool write failed: {e.strerror}") from e
            self._next_seq += len(accepted)
            for ident, data in accepted:
                self._sizes[ident] = len(data)
                self._bytes += len(data)
            stored = [ident for ident, _ in accepted]
            if too_large or full:
                self._count_drops(too_large + full)
                detail: dict[str, object] = {"dropped": self._dropped, "stored": stored}
                if full:
                    raise Unavailable(
                        f"spool full ({len(self._sizes)} records, {self._bytes} bytes): "
                        f"refused {too_large + full} of {len(frames)}; "
                        f"{self._dropped} records refused so far",
                        detail=detail,
                    )
                raise TooLarge(
                    f"{too_large} spool record(s) over the limit of "
                    f"{self._limits.max_record_bytes} bytes",
                    detail=detail,
                )
            return stored

    def _write_batch(self, batch: Sequence[tuple[str, bytes]]) -> None:
        """tmp files written and fsync'd, then renamed, then one directory fsync."""
        done: list[Path] = []
        try:
            for ident, data in batch:
                tmp = self._dir / (ident + _REC + _TMP)
                done.append(tmp)
                write_synced(tmp, data)
            for ident, _ in batch:
                os.replace(self._dir / (ident + _REC + _TMP), self._dir / (ident + _REC))
                done.append(self._dir / (ident + _REC))
            fsync_dir(self._dir)
        except OSError:
            for path in done:  # none of this batch was acknowledged: undo it all
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise

    def _count_drops(self, n: int) -> None:
        self._dropped += n
        try:
            write_atomic(self._dir / _DROPPED, b"%d\n" % self._dropped)
        except OSError:
            # The in-memory count still reaches heartbeats and metrics.
            pass

    def pending(self, *, limit: int | None = None) -> Iterator[SpoolEntry]:
        """Pending records, oldest first (a snapshot of the ids at call time).

        Damaged files are moved to ``corrupt/`` and skipped; records acked
        while iterating are skipped.

        Raises:
            Unavailable: if a record cannot be read or moved aside.
        """
        with self._mutex:
            idents = list(self._sizes)
        yielded = 0
        for ident in idents:
            if limit is not None and yielded >= limit:
                return
            entry = self._read(ident)
            if entry is not None:
                yielded += 1
                yield entry

    def _read(self, ident: str) -> SpoolEntry | None:
        path = self._dir / (ident + _REC)
        try:
            with open(path, "rb") as f:
                data = f.read(self._limits.max_record_bytes + _framing.MAX_HEADER + 1)
        except FileNotFoundError:
            with self._mutex:
                self._forget(ident)
            return None
        except OSError as e:
            raise Unavailable(f"spool read of {ident} failed: {e.strerror}") from e
        payload = _framing.decode(data)
        record: object = None
        if payload is not None:
            try:
                record = json.loads(payload)
            except ValueError:
                record = None
        if not isinstance(record, dict):
            self._move_aside(ident, _CORRUPT)
            with self._mutex:
                self._quarantined += 1
            return None
        return SpoolEntry(id=ident, record=record, size=len(data))

    def _forget(self, ident: str) -> None:
        size = self._sizes.pop(ident, None)
        if size is not None:
            self._bytes -= size

    def _move_aside(self, ident: str, where: str) -> None:
        target_dir = self._dir / where
        try:
            target_dir.mkdir(exist_ok=True, mode=0o700)
            target = target_dir / (ident + _REC)
            suffix = 0
            while target.exists():  # ids restart once the spool empties; keep both
                suffix += 1
                target = target_dir / f"{ident}.{suffix}{_REC}"
            with self._mutex:
                try:
                    os.replace(self._dir / (ident + _REC), target)
                except FileNotFoundError:
                    pass
                self._forget(ident)
            fsync_dir(target_dir)
            fsync_dir(self._dir)
        except OSError as e:
            raise Unavailable(f"spool: cannot move {ident} to {where}/: {e.strerror}") from e

    def ack(self, *idents: str) -> None:
        """Delete delivered records. Unknown ids are ignored (acks may repeat).

        Raises:
            Unavailable: if the disk refuses the deletion.
        """
        if not idents:
            return
        with self._mutex:
            for ident in idents:
                try:
                    os.unlink(self._dir / (ident + _REC))
                except FileNotFoundError:
                    pass
                except OSError as e:
                    raise Unavailable(f"spool ack failed: {e.strerror}") from e
                self._forget(ident)
            # Without this a crash could resurrect acked records: harmless
            # (the receiver dedupes by record id) but avoidable.
            try:
                fsync_dir(self._dir)
            except OSError as e:
                raise Unavailable(f"spool ack failed: {e.strerror}") from e

    def reject(self, ident: str) -> None:
        """Move a record the receiver refused as invalid to ``rejected/``.

        It is kept for an operator instead of blocking the records behind it.

        Raises:
            Unavailable: if the disk refuses the move.
        """
        self._move_aside(ident, _REJECTED)
        with self._mutex:
            self._rejected += 1

    def stats(self) -> SpoolStats:
        """Current counters."""
        with self._mutex:
            return SpoolStats(
                pending=len(self._sizes),
                pending_bytes=self._bytes,
                dropped=self._dropped,
                quarantined=self._quarantined,
                rejected=self._rejected,
            )

    def __len__(self) -> int:
        with self._mutex:
            return len(self._sizes)

    def close(self) -> None:
        """Release the directory lock. Records stay on disk."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
