# SPDX-License-Identifier: Apache-2.0
"""Decompression bombs: every uncompressed byte counts, and the work stops at the cap.

A bomb here is a small valid tar followed by zeros: the zeros after the
end-of-archive blocks are legal, hashed into the diffID, and count toward no
regular-file size, so before the stream itself was bounded a 64 KiB zstd
blob made the server decompress and hash 2 GiB.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from typing import BinaryIO, cast

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.errors import TooLarge
from attestor.manifest import (
    ManifestLimits,
    ScanBudgetExceeded,
    manifest_from_layer_blob,
    manifest_from_tar,
)

# The stream's own parts, tested where they live: no caller outside the package needs them.
from attestor.manifest._stream import HashingReader, open_decompressed, uncompressed_cap

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
PLAIN = "application/vnd.oci.image.layer.v1.tar"
MIB = 1 << 20
GIB = 1 << 30


def small_tar(files: int = 1) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n in range(files):
            info = tarfile.TarInfo(f"f{n}")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()


def zstd_bomb(zeros: int, chunk: int = 64 * MIB) -> bytes:
    """A tar then ``zeros`` zero bytes: one zstd frame of ``chunk`` zeros, repeated."""
    frame = zstandard.ZstdCompressor().compress(bytes(chunk))
    head = zstandard.ZstdCompressor().compress(small_tar())
    return head + frame * (zeros // chunk)


def gzip_bomb(zeros: int, chunk: int = 16 * MIB) -> bytes:
    """The same as a multi-member gzip (deflate's best ratio is about 1030:1)."""
    member = gzip.compress(bytes(chunk), compresslevel=9)
    return gzip.compress(small_tar()) + member * (zeros // chunk)


def decompressed_until_refused(blob: bytes, media_type: str, limits: ManifestLimits) -> int:
    hashing = HashingReader(open_decompressed(io.BytesIO(blob), media_type, limits=limits))
    with pytest.raises(TooLarge):
        manifest_from_tar(cast(BinaryIO, hashing), limits=limits)
    return hashing.bytes_read


def test_a_64_kib_zstd_blob_of_2_gib_is_refused_early_with_the_default_limits() -> None:
    blob = zstd_bomb(2 * GIB)
    assert len(blob) < 80 * 1024
    started = time.perf_counter()
    with pytest.raises(TooLarge, match="more than 1100:1"):
        manifest_from_layer_blob(io.BytesIO(blob), ZSTD)
    elapsed = time.perf_counter() - started
    # Just past the floor (128 MiB), not 2 GiB. (What the tar reader got; the
    # read that crossed the bound raised instead of returning its chunk.)
    limits = ManifestLimits()
    read = decompressed_until_refused(blob, ZSTD, limits)
    assert limits.expansion_floor_bytes - MIB < read <= limits.expansion_floor_bytes + MIB
    assert elapsed < 2.0, elapsed


def test_a_gzip_bomb_is_refused_at_the_uncompressed_cap() -> None:
    # Deflate cannot pass the ratio bound, so the absolute cap does the work.
    limits = ManifestLimits(max_total_size=MIB, max_entries=100)
    cap = uncompressed_cap(limits)
    assert cap < 4 * MIB
    blob = gzip_bomb(GIB)
    started = time.perf_counter()
    with pytest.raises(TooLarge, match=f"more than {cap} bytes"):
        manifest_from_layer_blob(io.BytesIO(blob), GZIP, limits=limits)
    assert time.perf_counter() - started < 1.0
    assert cap - MIB < decompressed_until_refused(blob, GZIP, limits) <= cap


def test_a_zstd_bomb_under_the_ratio_floor_is_refused_at_the_uncompressed_cap() -> None:
    limits = ManifestLimits(max_total_size=MIB, max_entries=100)
    blob = zstd_bomb(GIB, chunk=16 * MIB)
    cap = uncompressed_cap(limits)
    assert cap - MIB < decompressed_until_refused(blob, ZSTD, limits) <= cap


def test_header_bytes_count_not_only_file_content() -> None:
    # 3,000 two-byte files: 6 KB of content, but 3 MB of headers and padding.
    raw = small_tar(files=3000)
    limits = ManifestLimits(max_uncompressed_bytes=MIB)
    with pytest.raises(TooLarge, match=f"more than {MIB} bytes"):
        manifest_from_layer_blob(io.BytesIO(raw), PLAIN, limits=limits)
    with pytest.raises(TooLarge, match=f"more than {MIB} bytes"):
        manifest_from_layer_blob(io.BytesIO(gzip.compress(raw)), GZIP, limits=limits)
    ok = manifest_from_layer_blob(
        io.BytesIO(raw), PLAIN, limits=ManifestLimits(max_uncompressed_bytes=len(raw))
    )
    assert ok.uncompressed_size == len(raw)
    assert len(ok.manifest.entries) == 3000


def test_a_legitimate_gzip_layer_of_zeros_passes_the_ratio_bound() -> None:
    # A 200 MiB zero-filled file (a swap file, a sparse log written out): the
    # best deflate ratio, past the floor, must not be refused as a bomb.
    size = 200 * MIB
    info = tarfile.TarInfo("swapfile")
    info.size = size
    header = info.tobuf(tarfile.PAX_FORMAT)
    chunk = gzip.compress(bytes(8 * MIB), compresslevel=9)
    end = bytes(1024)
    blob = gzip.compress(header, compresslevel=9) + chunk * (size // (8 * MIB))
    blob += gzip.compress(end, compresslevel=9)
    scan = manifest_from_layer_blob(io.BytesIO(blob), GZIP)
    assert scan.uncompressed_size == len(header) + size + len(end)
    assert [(e.path, e.size) for e in scan.manifest.entries] == [("swapfile", size)]


def test_the_budget_stops_before_the_cap_with_its_own_error() -> None:
    raw = small_tar(files=100)
    blob = zstandard.ZstdCompressor().compress(raw)
    with pytest.raises(ScanBudgetExceeded) as caught:
        manifest_from_layer_blob(io.BytesIO(blob), ZSTD, budget=len(raw) - 1)
    assert caught.value.detail == {"limit": "budget", "max": len(raw) - 1}
    scan = manifest_from_layer_blob(io.BytesIO(blob), ZSTD, budget=len(raw))
    assert scan.uncompressed_size == len(raw)


def test_the_default_cap_allows_every_file_byte_and_a_header_allowance_per_entry() -> None:
    limits = ManifestLimits()
    cap = uncompressed_cap(limits)
    assert cap > limits.max_total_size + limits.max_entries * 3 * 512
    assert cap < limits.max_total_size + limits.max_entries * 16 * 1024
    assert uncompressed_cap(ManifestLimits(max_uncompressed_bytes=7)) == 7


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=4096),
    cap=st.integers(min_value=0, max_value=5000),
    reads=st.lists(st.integers(min_value=-1, max_value=700), min_size=1, max_size=40),
    media_type=st.sampled_from([GZIP, ZSTD, PLAIN]),
)
def test_no_read_pattern_gets_past_the_cap(
    data: bytes, cap: int, reads: list[int], media_type: str
) -> None:
    blob = {
        GZIP: lambda: gzip.compress(data),
        ZSTD: lambda: zstandard.ZstdCompressor().compress(data),
        PLAIN: lambda: data,
    }[media_type]()
    limits = ManifestLimits(max_uncompressed_bytes=cap)
    stream = open_decompressed(io.BytesIO(blob), media_type, limits=limits)
    got = b""
    try:
        for size in reads:
            got += stream.read(size)
    except TooLarge:
        assert len(data) > cap
        assert len(got) <= cap
    else:
        assert len(got) <= min(cap, len(data))
    assert data.startswith(got)
