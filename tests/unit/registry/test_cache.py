# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from pathlib import Path

import pytest

from attestor.digests import sha256_digest
from attestor.errors import InvalidInput, TooLarge, VerificationError
from attestor.registry.cache import BlobCache

DATA = b"0123456789" * 1000
DIGEST = sha256_digest(DATA)


def _chunks(data: bytes, n: int = 777) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


def test_store_then_hit(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    assert cache.path_for(DIGEST) is None
    path = cache.store(DIGEST, _chunks(DATA), max_size=1 << 20, expected_size=len(DATA))
    assert path.read_bytes() == DATA
    assert path == tmp_path / "sha256" / DIGEST[7:]
    assert cache.path_for(DIGEST, expected_size=len(DATA)) == path
    assert cache.path_for(DIGEST, expected_size=len(DATA) + 1) is None
    assert cache.verify(DIGEST)
    path.write_bytes(DATA[:-1] + b"x")
    assert not cache.verify(DIGEST)
    assert not cache.verify(sha256_digest(b"absent"))


@pytest.mark.parametrize(
    ("data", "expected_size", "max_size", "error"),
    [
        (DATA + b"!", len(DATA), 1 << 20, VerificationError),  # longer than descriptor
        (DATA[:-1], len(DATA), 1 << 20, VerificationError),  # shorter
        (DATA[:-1] + b"!", len(DATA), 1 << 20, VerificationError),  # other bytes
        (DATA, None, 100, TooLarge),
        (DATA, len(DATA), 100, TooLarge),
    ],
)
def test_store_rejects_and_leaves_nothing(
    tmp_path: Path,
    data: bytes,
    expected_size: int | None,
    max_size: int,
    error: type[Exception],
) -> None:
    cache = BlobCache(tmp_path)
    with pytest.raises(error):
        cache.store(DIGEST, _chunks(data), max_size=max_size, expected_size=expected_size)
    assert cache.path_for(DIGEST) is None
    assert list((tmp_path / "sha256").iterdir()) == []


def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    def broken() -> object:
        yield DATA[:10]
        raise OSError("connection reset")

    cache = BlobCache(tmp_path)
    with pytest.raises(OSError, match="reset"):
        cache.store(DIGEST, broken(), max_size=1 << 20)  # type: ignore[arg-type]
    assert list((tmp_path / "sha256").iterdir()) == []


def test_bad_digest_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        BlobCache(tmp_path).path_for("sha256:../../etc/passwd")
