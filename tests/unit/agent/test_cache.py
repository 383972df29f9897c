# SPDX-License-Identifier: Apache-2.0
"""AttestationCache: content addressing, re-verification on load, LRU bound, restarts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.cache import AttestationCache, CacheLimits, LayerRecord
from attestor.digests import Digest, KeyId, Sha256Hex
from attestor.errors import InvalidInput, TooLarge

LAYER = Digest("sha256:" + "a" * 64)


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_keyed_by_sha256(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        key = cache.put(b'{"payloadType": "x"}')
        assert key == _hex(b'{"payloadType": "x"}')
        assert (tmp_path / "blobs" / key).read_bytes() == b'{"payloadType": "x"}'
        assert cache.get(key) == b'{"payloadType": "x"}'
        assert cache.put(b'{"payloadType": "x"}') == key  # idempotent
        assert cache.get("0" * 64) is None
        stats = cache.stats()
        assert (stats.entries, stats.bytes, stats.hits, stats.misses) == (1, 20, 1, 1)
        with pytest.raises(InvalidInput):
            cache.get("../../etc/passwd")


def test_corruption_is_detected_on_load_and_entry_deleted(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        key = cache.put(b"manifest bytes")
        other = cache.put(b"other bytes")
        (tmp_path / "blobs" / key).write_bytes(b"manifest bytez")
        assert cache.get(key) is None
        assert not (tmp_path / "blobs" / key).exists()
        assert cache.stats().corrupt == 1
        assert cache.stats().entries == 1
        assert cache.get(other) == b"other bytes"
        # A fresh put of the right bytes heals it.
        cache.put(b"manifest bytes")
        assert cache.get(key) == b"manifest bytes"


def test_missing_file_is_a_miss(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        key = cache.put(b"gone")
        (tmp_path / "blobs" / key).unlink()
        assert cache.get(key) is None
        assert cache.stats().entries == 0


def test_eviction_keeps_total_under_bound_lru(tmp_path: Path) -> None:
    limits = CacheLimits(max_bytes=300, max_entry_bytes=200)
    blobs = [bytes([i]) * 100 for i in range(5)]
    with AttestationCache.open(tmp_path, limits=limits) as cache:
        keys = [cache.put(b) for b in blobs[:3]]
        assert cache.get(keys[0]) == blobs[0]  # 0 is now more recent than 1
        k3 = cache.put(blobs[3])
        assert cache.stats().bytes <= 300
        assert cache.get(keys[1]) is None  # least recently used went first
        assert cache.get(keys[0]) == blobs[0]
        assert cache.get(k3) == blobs[3]
        assert cache.stats().evicted == 1
        assert sum(p.stat().st_size for p in (tmp_path / "blobs").iterdir()) <= 300
        with pytest.raises(TooLarge):
            cache.put(b"x" * 201)


def test_survives_a_new_instance(tmp_path: Path) -> None:
    record = LayerRecord(
        layer_digest=LAYER,
        attestation_id="att-1",
        envelope_sha256=Sha256Hex(_hex(b"env")),
        manifest_sha256=Sha256Hex(_hex(b"man")),
        keyid=KeyId("k1"),
    )
    with AttestationCache.open(tmp_path) as cache:
        cache.put(b"env")
        cache.put(b"man")
        cache.set_layer(record)
    with AttestationCache.open(tmp_path) as cache:
        assert cache.layer(LAYER) == record
        assert cache.get(record.envelope_sha256) == b"env"
        assert cache.get(record.manifest_sha256) == b"man"
        assert cache.stats().entries == 2
        cache.forget_layer(LAYER)
        assert cache.layer(LAYER) is None


def test_reopen_with_smaller_bound_evicts(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        for i in range(4):
            cache.put(bytes([i]) * 100)
    with AttestationCache.open(tmp_path, limits=CacheLimits(max_bytes=250)) as cache:
        assert cache.stats().bytes <= 250
        assert cache.stats().entries == 2


def test_orphans_are_reconciled_on_open(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        kept = cache.put(b"kept")
        lost = cache.put(b"lost")
    (tmp_path / "blobs" / lost).unlink()  # row without a file
    (tmp_path / "blobs" / _hex(b"stray")).write_bytes(b"stray")  # file without a row
    (tmp_path / "blobs" / ".tmp-leftover").write_bytes(b"x")
    with AttestationCache.open(tmp_path) as cache:
        assert cache.stats().entries == 1
        assert cache.get(kept) == b"kept"
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [kept]


def test_corrupt_index_starts_afresh(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        cache.put(b"x")
    for name in ("index.db-wal", "index.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "index.db").write_bytes(b"this is not sqlite" * 100)
    with AttestationCache.open(tmp_path) as cache:
        assert cache.stats().entries == 0
        key = cache.put(b"y")
        assert cache.get(key) == b"y"


def test_layer_record_validates() -> None:
    with pytest.raises(InvalidInput):
        LayerRecord(
            Digest("sha256:short"), "a", Sha256Hex("0" * 64), Sha256Hex("0" * 64), KeyId("")
        )
    with pytest.raises(InvalidInput):
        LayerRecord(LAYER, "a", Sha256Hex("XYZ"), Sha256Hex("0" * 64), KeyId(""))


def test_discard_removes_entry(tmp_path: Path) -> None:
    with AttestationCache.open(tmp_path) as cache:
        key = cache.put(b"bad envelope")
        cache.discard(key)
        cache.discard(key)  # twice is fine
        assert cache.get(key) is None
        assert cache.stats().entries == 0
        assert not (tmp_path / "blobs" / key).exists()


def test_open_blob_streams_the_bytes_and_drops_a_corrupt_one(tmp_path: Path) -> None:
    big = bytes(range(256)) * 1000  # several hashing chunks
    with AttestationCache.open(tmp_path) as cache:
        key, bad = cache.put(big), cache.put(b"manifest bytes")
        f = cache.open_blob(key)
        assert f is not None
        with f:
            assert f.read() == big
        (tmp_path / "blobs" / bad).write_bytes(b"manifest bytez")
        assert cache.open_blob(bad) is None
        assert not (tmp_path / "blobs" / bad).exists()
        assert cache.open_blob("ab" * 32) is None
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.corrupt, stats.entries) == (1, 2, 1, 1)


def test_open_blob_refuses_a_blob_over_the_entry_cap(tmp_path: Path) -> None:
    # Grown on disk past the cap (its hash is only checked over cap + 1 bytes).
    with AttestationCache.open(tmp_path, limits=CacheLimits(max_entry_bytes=100)) as cache:
        key = cache.put(b"x" * 100)
        (tmp_path / "blobs" / key).write_bytes(b"x" * 100_000)
        assert cache.open_blob(key) is None
        assert cache.get(key) is None
