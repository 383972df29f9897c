# SPDX-License-Identifier: Apache-2.0
"""AttestedManifest: the agent's compact form accepts exactly what FileManifest does."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import (
    AttestedManifest,
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    pack_entry,
    unpack_entry,
)
from attestor.manifest._compact import file_digest_of, pack_file

VECTORS = Path(__file__).parents[2] / "assets" / "manifest-vectors"
VECTOR_INDEX = json.loads((VECTORS / "vectors.json").read_text())
CAP = bytes.fromhex("0100000200200000000000000000000000000000")
SHA = "ab" * 32


def _sample() -> FileManifest:
    return FileManifest.from_entries(
        [
            ManifestEntry("bin", EntryType.DIR, mode=0o755, uid=0, gid=0),
            ManifestEntry(
                "bin/ash",
                EntryType.HARDLINK,
                mode=0o755,
                uid=0,
                gid=0,
                size=3,
                sha256=SHA,
                link="bin/a",
            ),
            ManifestEntry("bin/a", EntryType.FILE, mode=0o755, uid=0, gid=0, size=3, sha256=SHA),
            ManifestEntry(
                "bin/ping",
                EntryType.FILE,
                mode=0o4755,
                uid=0,
                gid=0,
                size=0,
                sha256="00" * 32,
                capability=CAP,
            ),
            ManifestEntry("bin/sh", EntryType.SYMLINK, uid=0, gid=0, link="a"),
            ManifestEntry("dev", EntryType.OPAQUE_DIR, mode=0o755, uid=0, gid=0),
            ManifestEntry(
                "dev/null", EntryType.CHARDEV, mode=0o666, uid=0, gid=0, devmajor=1, devminor=3
            ),
            ManifestEntry("gone", EntryType.WHITEOUT),
            ManifestEntry("é€ 😀", EntryType.FILE, mode=0o644, uid=7, gid=8, size=1, sha256=SHA),
        ]
    )


def test_round_trip_keeps_every_entry_and_both_digests() -> None:
    manifest = _sample()
    compact = AttestedManifest.from_canonical_bytes(manifest.canonical_bytes())
    assert compact.to_manifest() == manifest
    assert compact.sha256 == manifest.sha256 and compact.tree_digest == manifest.tree_digest
    assert compact.get("bin/ping") == manifest.get("bin/ping")
    assert compact.get("nope") is None and "bin" in compact and len(compact) == 9
    same = AttestedManifest.from_manifest(manifest)
    assert list(same.records()) == list(compact.records())


def test_pack_entry_round_trips_and_distinguishes() -> None:
    for entry in _sample().entries:
        assert unpack_entry(entry.path, pack_entry(entry)) == entry
    a, b = _sample().entries[2], _sample().entries[3]
    assert pack_entry(a) != pack_entry(b)


def test_empty_manifest() -> None:
    compact = AttestedManifest.from_canonical_bytes(FileManifest(()).canonical_bytes())
    assert len(compact) == 0 and compact.tree_digest == FileManifest(()).tree_digest


def _variants(data: bytes) -> list[bytes]:
    return [
        data + b" ",
        b" " + data,
        data.replace(b'","', b'", "', 1),
        data.replace(b'"size":3', b'"size":3.0', 1),
        data.replace(b'"size":3', b'"size":03', 1),
        data.replace(b'"uid":0', b'"uid":0,"uid":0', 1),
        data.replace(b"\\u00e9", b"\xc3\xa9", 1) if b"\\u00e9" in data else data + b"x",
        data.replace("é".encode(), b"\\u00e9", 1),
        data.replace("é".encode(), b"\xff", 1),
        data.replace(b'"path":"bin/a"', b'"path":"bin/b"', 1),  # hardlink target missing
        data.replace(b'"path":"dev"', b'"path":"dew"', 1),  # parent missing
        data.replace(b'"mediaType":"', b'"mediaType":"x', 1),
        data[:-2],
        data.replace(b"],", b",]", 1),
    ]


def test_rejects_what_file_manifest_rejects() -> None:
    data = _sample().canonical_bytes()
    for bad in _variants(data):
        with pytest.raises(InvalidInput):
            FileManifest.from_canonical_bytes(bad)
        with pytest.raises(InvalidInput):
            AttestedManifest.from_canonical_bytes(bad)


def test_limits() -> None:
    data = _sample().canonical_bytes()
    with pytest.raises(TooLarge):
        AttestedManifest.from_canonical_bytes(data, limits=ManifestLimits(max_entries=8))
    with pytest.raises(TooLarge):
        AttestedManifest.from_canonical_bytes(data, limits=ManifestLimits(max_manifest_bytes=9))


def test_long_entry_spans_decode_windows() -> None:
    link = "x/" * 1500 + "y"
    manifest = FileManifest((ManifestEntry("l", EntryType.SYMLINK, uid=0, gid=0, link=link),))
    compact = AttestedManifest.from_canonical_bytes(manifest.canonical_bytes())
    assert compact.to_manifest() == manifest


def test_path_table_finds_every_path_and_nothing_else() -> None:
    # Enough entries for several blocks of the path table, with names that
    # share prefixes, sort around "/" and need more than one UTF-8 byte.
    names = sorted({f"d{i % 7}/{'é' * (i % 3)}f{i:03d}" for i in range(100)} | {"d0-x", "d0.a"})
    dirs = sorted({n.split("/")[0] for n in names if "/" in n})
    entries = [ManifestEntry(d, EntryType.DIR, mode=0o755, uid=0, gid=0) for d in dirs]
    entries += [
        ManifestEntry(n, EntryType.FILE, mode=0o644, uid=0, gid=0, size=0, sha256=SHA)
        for n in names
    ]
    manifest = FileManifest.from_entries(entries)
    compact = AttestedManifest.from_canonical_bytes(manifest.canonical_bytes())
    paths = [e.path for e in manifest.entries]
    assert list(compact.paths()) == paths
    for i, path in enumerate(paths):
        assert compact.index(path) == i and compact.path_at(i) == path
    find = compact.finder()
    assert find(paths[17].encode()) == 17
    # Two neighbours joined by a NUL must not match across the separator.
    for absent in ["", "a", "d7", "d0/", "d0/f000/x", "zzz", "d0-", "é", "d0/f001",
                   f"{paths[20]}\0{paths[21]}"]:  # fmt: skip
        assert compact.index(absent) is None
        assert absent not in compact
    assert compact.get(paths[40]) == manifest.get(paths[40])


def _reader(data: bytes, sizes: list[int]) -> Callable[[int], bytes]:
    """A ``read`` that returns short reads of the given sizes (then the rest)."""
    stream = io.BytesIO(data)
    left = list(sizes)

    def read(n: int) -> bytes:
        return stream.read(min(n, left.pop(0)) if left else n)

    return read


def _same(a: AttestedManifest, b: AttestedManifest) -> None:
    assert (a.sha256, a.tree_digest) == (b.sha256, b.tree_digest)
    assert list(a.records()) == list(b.records())


@pytest.mark.parametrize("vector", VECTOR_INDEX, ids=[v["name"] for v in VECTOR_INDEX])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_stream_gives_the_vectors_digests(vector: dict[str, str], chunk: int) -> None:
    data = (VECTORS / vector["manifest"]).read_bytes()
    streamed = AttestedManifest.from_canonical_stream(_reader(data, [chunk] * len(data)))
    assert (streamed.sha256, streamed.tree_digest) == (vector["sha256"], vector["tree_digest"])
    assert streamed.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()
    _same(streamed, AttestedManifest.from_canonical_bytes(data))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), max_size=40),
    which=st.integers(0, 100),
    cut=st.integers(0, 10_000),
    junk=st.binary(max_size=3),
)
def test_stream_accepts_exactly_what_bytes_accepts(
    sizes: list[int], which: int, cut: int, junk: bytes
) -> None:
    good = _sample().canonical_bytes()
    candidates = [good, good + junk, good[: cut % len(good)], *_variants(good)]
    data = candidates[which % len(candidates)]
    try:
        expected: AttestedManifest | type[Exception] = AttestedManifest.from_canonical_bytes(data)
    except (InvalidInput, TooLarge) as e:
        expected = type(e)
    if isinstance(expected, AttestedManifest):
        _same(AttestedManifest.from_canonical_stream(_reader(data, sizes)), expected)
    else:
        with pytest.raises(expected):
            AttestedManifest.from_canonical_stream(_reader(data, sizes))


def test_stream_over_the_byte_cap_stops_reading() -> None:
    data = _sample().canonical_bytes()
    stream = io.BytesIO(data * 1000)  # not a manifest past the first copy, nor read that far
    with pytest.raises(TooLarge):
        limits = ManifestLimits(max_manifest_bytes=9)
        AttestedManifest.from_canonical_stream(stream.read, limits=limits)
    assert stream.tell() < len(data) * 1000


@pytest.mark.parametrize(
    ("uid", "gid", "size", "length"),
    [
        (0, 0, 0, 43),
        (65535, 65535, 2**32 - 1, 43),
        (65536, 0, 1, 62),
        (0, 65536, 1, 62),
        (0, 0, 2**32, 62),
        (2**32 - 1, 7, 2**63 - 1, 62),
    ],
)
@pytest.mark.parametrize("cap", [b"", CAP])
def test_file_records_short_and_wide(
    uid: int, gid: int, size: int, length: int, cap: bytes
) -> None:
    raw = bytes(range(32))
    entry = ManifestEntry(
        "f", EntryType.FILE, mode=0o4755, uid=uid, gid=gid, size=size, sha256=raw.hex(),
        capability=cap or None,
    )  # fmt: skip
    record = pack_entry(entry)
    assert len(record) == length + len(cap)
    assert record == pack_file(0o4755, uid, gid, size, raw, cap)
    assert file_digest_of(record) == raw + cap
    assert unpack_entry("f", record) == entry
    # A short record is never a wide one's prefix: the type byte tells them apart.
    assert record[0] == (0x80 if length == 43 else 0)
