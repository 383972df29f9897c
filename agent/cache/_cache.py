# SPDX-License-Identifier: Apache-2.0
"""Content-addressed disk cache for envelopes and manifests, with a layer index.

Layout of the cache directory::

    blobs/<sha256 hex>   the bytes; the name is their sha256
    index.db             sqlite3: blob sizes and LRU ticks, layer -> attestation

Every read re-hashes the bytes: a file whose hash is not its name (bit rot, a
torn write, an edit on the host) is deleted and reported as a miss, so the
caller fetches the bytes again and verifies their signature as usual. The cache
is never a source of trust: it only saves downloads.

Blob writes are not fsync'd: losing or tearing one in a crash only costs a
download, and the re-hash on read catches it. Recency is an integer tick kept
in the index (not atime, which ``noatime``/``relatime`` mounts do not keep
up to date); eviction drops the least recently used blobs once the total size
exceeds the cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

from attestor.digests import Digest, KeyId, Sha256Hex, parse_digest
from attestor.errors import ConfigError, InvalidInput, TooLarge, Unavailable

__all__ = ["AttestationCache", "CacheLimits", "CacheStats", "LayerRecord"]

_SCHEMA_VERSION = 1
_CHUNK = 64 * 1024
_T = TypeVar("_T")
_HEX = frozenset("0123456789abcdef")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    tick INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_tick ON blobs (tick);
CREATE TABLE IF NOT EXISTS layers (
    layer_digest TEXT PRIMARY KEY,
    attestation_id TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    keyid TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class CacheLimits:
    """Caps on the cache."""

    #: Total size of the cached blobs; least recently used ones go beyond it.
    max_bytes: int = 256 * 1024 * 1024
    #: Largest single blob accepted (a manifest of a very large layer).
    max_entry_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_entry_bytes <= 0:
            raise ConfigError(f"cache limits must be positive, got {self}")


@dataclass(frozen=True)
class LayerRecord:
    """What the agent learnt about one layer: its attestation and the blobs' hashes."""

    layer_digest: Digest
    attestation_id: str
    envelope_sha256: Sha256Hex
    manifest_sha256: Sha256Hex
    keyid: KeyId

    def __post_init__(self) -> None:
        parse_digest(self.layer_digest)
        _check_hex(self.envelope_sha256)
        _check_hex(self.manifest_sha256)
        if not self.attestation_id:
            raise InvalidInput("attestation_id must not be empty")


@dataclass(frozen=True)
class CacheStats:
    """Counters since this instance opened (``entries``/``bytes`` are current)."""

    entries: int
    bytes: int
    hits: int
    misses: int
    #: Entries whose bytes no longer matched their name, deleted on load.
    corrupt: int
    evicted: int


@contextlib.contextmanager
def _disk_errors(what: str) -> Iterator[None]:
    """Translate sqlite and file-system failures (disk full, I/O error)."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        raise Unavailable(f"cache {what} failed: {e}") from e


def _check_hex(value: str) -> Sha256Hex:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise InvalidInput(f"not a sha256 hex digest: {str(value)[:80]!r}")
    return Sha256Hex(value)


class AttestationCache:
    """The cache; thread-safe within one process. Open it with :meth:`open`."""

    def __init__(self, directory: Path, db: sqlite3.Connection, limits: CacheLimits) -> None:
        self._dir = directory
        self._blobs = directory / "blobs"
        self._db = db
        self._limits = limits
        self._lock = threading.Lock()
        self._hits = self._misses = self._corrupt = self._evicted = 0
        row = db.execute("SELECT COALESCE(SUM(size), 0), COALESCE(MAX(tick), 0) FROM blobs")
        self._bytes, self._tick = (int(v) for v in row.fetchone())
        self._entries = int(db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])

    @classmethod
    def open(cls, directory: Path, *, limits: CacheLimits | None = None) -> AttestationCache:
        """Open (creating if needed) the cache in ``directory``.

        Index rows without a file are dropped and files without a row deleted
        (a crash between the two writes). An unreadable index is a lost cache:
        it is wiped and started afresh.

        Raises:
            ConfigError: if the directory cannot be created or used.
        """
        limits = limits or CacheLimits()
        try:
            db = cls._connect(directory)
        except sqlite3.DatabaseError:
            # Corrupt index: a cache may always be thrown away.
            shutil.rmtree(directory / "blobs", ignore_errors=True)
            for name in ("index.db", "index.db-wal", "index.db-shm", "index.db-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / name)
            try:
                db = cls._connect(directory)
            except sqlite3.DatabaseError as e:
                raise ConfigError(f"cache index in {directory} unusable: {e}") from e
        except OSError as e:
            raise ConfigError(f"cache directory {directory} unusable: {e.strerror}") from e
        cls._reconcile(directory / "blobs", db)
        cache = cls(directory, db, limits)
        with cache._lock:
            cache._evict_locked(keep=None)
        return cache

    @staticmethod
    def _connect(directory: Path) -> sqlite3.Connection:
        (directory / "blobs").mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(directory / "index.db", check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, _SCHEMA_VERSION):
                db.execute("DROP TABLE IF EXISTS blobs")
                db.execute("DROP TABLE IF EXISTS layers")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @staticmethod
    def _reconcile(blobs: Path, db: sqlite3.Connection) -> None:
        known = {row[0] for row in db.execute("SELECT sha256 FROM blobs")}
        present: set[str] = set()
        for entry in os.scandir(blobs):
            if entry.name in known:
                present.add(entry.name)
            else:  # a leftover temp file or a blob whose row never got written
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(entry.path)
        missing = known - present
        if missing:
            db.executemany("DELETE FROM blobs WHERE sha256 = ?", [(m,) for m in missing])

    # -- blobs ---------------------------------------------------------------

    def put(self, data: bytes) -> Sha256Hex:
        """Cache ``data``; return its sha256 hex (its key).

        Raises:
            TooLarge: if ``data`` is over ``max_entry_bytes`` or ``max_bytes``.
            Unavailable: if the disk or the index refuses the write.
        """
        cap = min(self._limits.max_entry_bytes, self._limits.max_bytes)
        if len(data) > cap:
            raise TooLarge(f"cache entry of {len(data)} bytes over the limit of {cap}")
        key = Sha256Hex(hashlib.sha256(data).hexdigest())
        with self._lock, _disk_errors("write"):
            self._tick += 1
            cur = self._db.execute("UPDATE blobs SET tick = ? WHERE sha256 = ?", (self._tick, key))
            if cur.rowcount and (self._blobs / key).exists():
                return key
            tmp = self._blobs / f".{key}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self._blobs / key)
            if not cur.rowcount:
                self._db.execute(
                    "INSERT INTO blobs (sha256, size, tick) VALUES (?, ?, ?)",
                    (key, len(data), self._tick),
                )
                self._bytes += len(data)
                self._entries += 1
            self._evict_locked(keep=key)
        return key

    def get(self, key: str) -> bytes | None:
        """The cached bytes whose sha256 hex is ``key``, or None.

        The bytes are re-hashed; a mismatch deletes the entry and is a miss.

        Raises:
            InvalidInput: if ``key`` is not 64 lowercase hex characters.
            Unavailable: if the disk or the index fails.
        """
        cap = self._limits.max_entry_bytes + 1

        def load(f: BinaryIO) -> tuple[bytes, str]:
            # Sized by the file: read(cap) would allocate the whole cap (64 MiB
            # by default) for every read, however small the blob.
            data = f.read(min(os.fstat(f.fileno()).st_size + 1, cap))
            return data, hashlib.sha256(data).hexdigest()

        return self._load(key, load)

    def open_blob(self, key: str) -> BinaryIO | None:
        """The cached blob ``key`` as a file open at its start, or None.

        As :meth:`get`, without reading the blob into memory: the file is
        hashed in chunks first. The caller closes the file, and must check what
        it reads (the file could be rewritten in place after this hash): the
        agent's manifest parser hashes the bytes it parses and compares that
        with the signed statement.

        Raises:
            InvalidInput: if ``key`` is not 64 lowercase hex characters.
            Unavailable: if the disk or the index fails.
        """
        cap = self._limits.max_entry_bytes + 1

        def load(f: BinaryIO) -> tuple[BinaryIO, str]:
            digest = hashlib.sha256()
            while chunk := f.read(min(_CHUNK, cap - f.tell())):
                digest.update(chunk)
            f.seek(0)
            return f, digest.hexdigest()

        return self._load(key, load)

    def _load(self, key: str, load: Callable[[BinaryIO], tuple[_T, str]]) -> _T | None:
        # One lookup for get and open_blob: a miss, or a file whose hash is
        # not its name (deleted, counted as corrupt), is None.
        key = _check_hex(key)
        with self._lock, _disk_errors("read"):
            row = self._db.execute("SELECT size FROM blobs WHERE sha256 = ?", (key,)).fetchone()
            if row is None:
                self._misses += 1
                return None
            value: _T | None = None
            digest: str | None = None
            try:
                f = open(self._blobs / key, "rb")  # noqa: SIM115 - handed to the caller on a hit
            except FileNotFoundError:
                pass
            else:
                try:
                    value, digest = load(f)
                finally:
                    if value is not f or digest != key:
                        f.close()
            if value is None or digest != key:
                if value is not None:
                    self._corrupt += 1
                self._drop_locked(key, int(row[0]))
                self._misses += 1
                return None
            self._tick += 1
            self._db.execute("UPDATE blobs SET tick = ? WHERE sha256 = ?", (self._tick, key))
            self._hits += 1
            return value

    def discard(self, key: str) -> None:
        """Remove an entry (e.g. bytes that failed signature verification).

        Raises:
            InvalidInput: if ``key`` is not 64 lowercase hex characters.
            Unavailable: if the disk or the index fails.
        """
        key = _check_hex(key)
        with self._lock, _disk_errors("delete"):
            row = self._db.execute("SELECT size FROM blobs WHERE sha256 = ?", (key,)).fetchone()
            if row is not None:
                self._drop_locked(key, int(row[0]))

    def _drop_locked(self, key: str, size: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blobs / key)
        cur = self._db.execute("DELETE FROM blobs WHERE sha256 = ?", (key,))
        if cur.rowcount:
            self._bytes -= size
            self._entries -= 1

    def _evict_locked(self, *, keep: str | None) -> None:
        # Totals from the index, not only this instance's counters: another
        # process (``attestor-agent check --once``) may share the directory.
        row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM blobs").fetchone()
        self._bytes, self._entries = int(row[0]), int(row[1])
        while self._bytes > self._limits.max_bytes:
            rows = self._db.execute(
                "SELECT sha256, size FROM blobs WHERE sha256 != ? ORDER BY tick LIMIT 64",
                (keep or "",),
            ).fetchall()
            if not rows:
                return
            for key, size in rows:
                if self._bytes <= self._limits.max_bytes:
                    return
                self._drop_locked(key, int(size))
                self._evicted += 1

    # -- layer index ---------------------------------------------------------

    def set_layer(self, record: LayerRecord) -> None:
        """Remember (or replace) what is known about a layer.

        Raises:
            Unavailable: if the index cannot be written.
        """
        with self._lock, _disk_errors("index write"):
            self._db.execute(
                "INSERT OR REPLACE INTO layers (layer_digest, attestation_id, envelope_sha256,"
                " manifest_sha256, keyid) VALUES (?, ?, ?, ?, ?)",
                (
                    record.layer_digest,
                    record.attestation_id,
                    record.envelope_sha256,
                    record.manifest_sha256,
                    record.keyid,
                ),
            )

    def layer(self, layer_digest: str) -> LayerRecord | None:
        """The record for ``layer_digest``, or None. Its blobs may have been evicted.

        Raises:
            InvalidInput: if ``layer_digest`` is not ``sha256:<hex>``.
            Unavailable: if the index cannot be read.
        """
        parse_digest(layer_digest)
        with self._lock, _disk_errors("index read"):
            row = self._db.execute(
                "SELECT attestation_id, envelope_sha256, manifest_sha256, keyid"
                " FROM layers WHERE layer_digest = ?",
                (layer_digest,),
            ).fetchone()
        if row is None:
            return None
        try:
            return LayerRecord(
                layer_digest=Digest(layer_digest),
                attestation_id=str(row[0]),
                envelope_sha256=Sha256Hex(str(row[1])),
                manifest_sha256=Sha256Hex(str(row[2])),
                keyid=KeyId(str(row[3])),
            )
        except InvalidInput:
            self.forget_layer(layer_digest)  # a damaged row is a miss
            return None

    def forget_layer(self, layer_digest: str) -> None:
        """Drop the record for ``layer_digest`` (e.g. after a revocation).

        Raises:
            Unavailable: if the index cannot be written.
        """
        with self._lock, _disk_errors("index write"):
            self._db.execute("DELETE FROM layers WHERE layer_digest = ?", (layer_digest,))

    def stats(self) -> CacheStats:
        """Current counters."""
        with self._lock:
            return CacheStats(
                entries=self._entries,
                bytes=self._bytes,
                hits=self._hits,
                misses=self._misses,
                corrupt=self._corrupt,
                evicted=self._evicted,
            )

    def close(self) -> None:
        """Close the index. Entries stay on disk."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> AttestationCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
