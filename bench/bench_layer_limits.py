# SPDX-License-Identifier: Apache-2.0
"""What a hostile layer can cost the server, each figure next to its raw limit.

1. Peak RSS while attesting a layer of 1,000,000 entries (the default
   ``max_entries``): ``manifest_from_layer_blob`` over a generated plain tar,
   in a fresh subprocess, read with ``resource.getrusage`` (``ru_maxrss``);
   next to a bare python that reads (and hashes) the same tar bytes, and a
   python that only imports the manifest code.
2. The time to refuse decompression bombs (a small valid tar followed by
   zeros): a 64 KiB zstd blob of 2 GiB under the default limits (the
   expansion ratio stops it), and the same zstd and a 1 MiB gzip blob of
   1 GiB under the API's inline budget (8 MiB: the request stops and defers
   to a job); next to the time to attest, and to merely gunzip, 1 MB of a
   legitimate layer.

Usage: .venv/bin/python bench/bench_layer_limits.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import zstandard
from _host import print_host  # bench/_host.py, beside this file

from attestor.errors import TooLarge
from attestor.manifest import ManifestLimits, manifest_from_layer_blob

PLAIN = "application/vnd.oci.image.layer.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MIB = 1 << 20
GIB = 1 << 30
INLINE_BUDGET = 8 * MIB  # the default ATTESTOR_ISSUE_INLINE_SCAN_BYTES


def _header(name: bytes, typeflag: bytes, mode: int) -> bytes:
    """One ustar header of an empty member (writing 1M TarInfo objects takes minutes)."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"%07o\x00" % mode
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = b"00000000000\x00"
    block[136:148] = b"00000000000\x00"
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def write_many_entries(path: Path, entries: int) -> None:
    """A plain tar of ``entries`` members: 1 directory per 1,000, empty files in them."""
    with path.open("wb") as out:
        written = 0
        d = 0
        while written < entries:
            out.write(_header(b"d%05d/" % d, b"5", 0o755))
            written += 1
            for f in range(min(999, entries - written)):
                out.write(_header(b"d%05d/f%03d" % (d, f), b"0", 0o644))
                written += 1
            d += 1
        out.write(bytes(1024))


_OURS = """
import resource, sys
from attestor.manifest import manifest_from_layer_blob
with open(sys.argv[1], "rb") as blob:
    scan = manifest_from_layer_blob(blob, "application/vnd.oci.image.layer.v1.tar")
print(len(scan.manifest.entries), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_IMPORTS = """
import resource
from attestor.manifest import manifest_from_layer_blob, manifest_from_tar
print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_BARE = """
import hashlib, resource, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        h.update(chunk)
print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak(script: str, path: Path) -> tuple[int, float, int]:
    """``(entries, seconds, peak RSS in KiB)`` of ``script`` in a fresh interpreter."""
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", textwrap.dedent(script), str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    took = time.perf_counter() - start
    entries, rss = done.stdout.split()
    return int(entries), took, int(rss)


def small_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hi")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()


def zstd_bomb(zeros: int) -> bytes:
    frame = zstandard.ZstdCompressor().compress(bytes(64 * MIB))
    return zstandard.ZstdCompressor().compress(small_tar()) + frame * (zeros // (64 * MIB))


def gzip_bomb(zeros: int) -> bytes:
    member = gzip.compress(bytes(16 * MIB), compresslevel=9)
    return gzip.compress(small_tar()) + member * (zeros // (16 * MIB))


def legit_gzip_layer(total: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n in range(total // (16 * 1024)):
            data = os.urandom(8 * 1024) + bytes(8 * 1024)  # compresses about 2:1
            info = tarfile.TarInfo(f"usr/lib/f{n:04d}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def refusal(blob: bytes, media_type: str, **kw: object) -> tuple[float, str]:
    """Best of 3: seconds until ``manifest_from_layer_blob`` raises, and why."""
    best, why = float("inf"), ""
    for _ in range(3):
        start = time.perf_counter()
        try:
            manifest_from_layer_blob(io.BytesIO(blob), media_type, **kw)  # type: ignore[arg-type]
        except TooLarge as e:
            best, why = min(best, time.perf_counter() - start), type(e).__name__
        else:
            raise SystemExit(f"not refused: {media_type} {kw}")
    return best, why


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    print_host()

    with tempfile.TemporaryDirectory(prefix="bench-layer-limits-") as tmp:
        path = Path(tmp) / "many.tar"
        write_many_entries(path, args.entries)
        size = path.stat().st_size
        _, bare_s, bare_kib = _peak(_BARE, path)
        _, _, imports_kib = _peak(_IMPORTS, path)
        entries, ours_s, ours_kib = _peak(_OURS, path)
        print(f"attesting a layer of {args.entries:,} entries ({size / 1e6:.0f} MB plain tar):")
        print(f"  bare python reading + hashing the tar : {bare_kib / 1024:7.0f} MiB peak RSS")
        print(f"  python importing attestor.manifest    : {imports_kib / 1024:7.0f} MiB peak RSS")
        print(
            f"  manifest_from_layer_blob               : {ours_kib / 1024:7.0f} MiB peak RSS"
            f" ({(ours_kib - bare_kib) * 1024 / entries:.0f} B per entry over bare python;"
            f" {entries:,} manifest entries, {ours_s:.1f} s; bare read {bare_s:.1f} s)"
        )
        # Interpreter start included in both: a rate for the host line, not a ceiling.
        print(
            f"  raw rates: bare read + sha256 {size / bare_s / 1e6:.0f} MB/s,"
            f" manifest_from_layer_blob {entries / ours_s:,.0f} entries/s"
        )

    legit = legit_gzip_layer(1_000_000)
    raw = gzip.decompress(legit)
    legit_s = best_of(lambda: manifest_from_layer_blob(io.BytesIO(legit), GZIP))
    gunzip_s = best_of(lambda: gzip.decompress(legit))
    zbomb, gbomb = zstd_bomb(2 * GIB), gzip_bomb(GIB)
    print(f"refusing a bomb (best of 3) next to a legitimate {len(raw) / 1e6:.1f} MB layer:")
    print(
        f"  gunzip 1 MB legit layer (raw)          : {1000 * gunzip_s:8.1f} ms"
        f" ({len(raw) / gunzip_s / 1e6:.0f} MB/s of tar out)"
    )
    print(f"  attest 1 MB legit layer (gzip)         : {1000 * legit_s:8.1f} ms")
    took, why = refusal(zbomb, ZSTD)
    print(
        f"  zstd {len(zbomb) // 1024} KiB -> 2 GiB, default limits   : {1000 * took:8.1f} ms"
        f" ({why}: past {ManifestLimits().max_expansion_ratio}:1 after"
        f" {ManifestLimits().expansion_floor_bytes // MIB} MiB)"
    )
    took, why = refusal(zbomb, ZSTD, budget=INLINE_BUDGET)
    print(f"  zstd same, request budget 8 MiB        : {1000 * took:8.1f} ms ({why} -> 202 + job)")
    took, why = refusal(gbomb, GZIP, budget=INLINE_BUDGET)
    print(
        f"  gzip {len(gbomb) // 1024} KiB -> 1 GiB, budget 8 MiB   : {1000 * took:8.1f} ms"
        f" ({why} -> 202 + job)"
    )
    capped = ManifestLimits(max_uncompressed_bytes=256 * MIB)
    took, why = refusal(gbomb, GZIP, limits=capped)
    print(f"  gzip same, job with a 256 MiB cap      : {1000 * took:8.1f} ms ({why})")


if __name__ == "__main__":
    main()
