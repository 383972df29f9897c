# SPDX-License-Identifier: Apache-2.0
"""Canonical serialization, strict parsing and the tree digest."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import (
    MEDIA_TYPE,
    EntryType,
    FileManifest,
    ManifestEntry,
    ManifestLimits,
    root_from_inclusion_proof,
)
from attestor.manifest._merkle import inclusion_proof, merkle_root

H = "a" * 64


def small() -> FileManifest:
    return FileManifest.from_entries(
        [
            ManifestEntry("é", EntryType.FILE, mode=0o4755, uid=0, gid=0, size=3, sha256=H),
            ManifestEntry("d", EntryType.OPAQUE_DIR, mode=0o755, uid=1, gid=2),
            ManifestEntry("d/\n", EntryType.WHITEOUT),
        ]
    )


def test_canonical_bytes_are_exact() -> None:
    assert (
        small().canonical_bytes()
        == (
            '{"entries":['
            '{"gid":2,"mode":"0755","path":"d","type":"opaque_dir","uid":1},'
            '{"path":"d/\\n","type":"whiteout"},'
            '{"gid":0,"mode":"4755","path":"é","sha256":"' + H + '","size":3,"type":"file","uid":0}'
            '],"mediaType":"' + MEDIA_TYPE + '"}'
        ).encode()
    )
    m = small()
    assert m.sha256 == "sha256:" + hashlib.sha256(m.canonical_bytes()).hexdigest()


def test_round_trip_and_rejection_of_non_canonical_forms() -> None:
    data = small().canonical_bytes()
    assert FileManifest.from_canonical_bytes(data) == small()
    doc = json.loads(data)
    bad = [
        data + b"\n",
        b" " + data,
        json.dumps(doc).encode(),  # spaces
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),  # \u00e9 escaped
        data.replace(b'"uid":1', b'"uid":1.0'),
        data.replace(b'"uid":1', b'"uid":true'),
        data.replace(b'"uid":1', b'"uid":01'),
        data.replace(b'"uid":1}', b'"uid":1,"uid":1}'),
        data.replace(b'"uid":1}', b'"uid":1,"zz":1}'),
        data.replace(b'"mode":"0755"', b'"mode":"755"'),
        data.replace(b'"mode":"0755"', b'"mode":"0855"'),
        data.replace(b'"gid":2,', b""),
        data.replace(b"v1+json", b"v2+json"),
        data.replace(b'"type":"whiteout"', b'"type":"socketx"'),
        b'{"entries":[],"mediaType":"' + MEDIA_TYPE.encode() + b'","x":1}',
        b"\xff",
        b"[]",
    ]
    for item in bad:
        with pytest.raises(InvalidInput):
            FileManifest.from_canonical_bytes(item)


def test_constructor_invariants() -> None:
    file = ManifestEntry("a", EntryType.FILE, mode=0o644, uid=0, gid=0, size=0, sha256=H)
    with pytest.raises(InvalidInput):
        FileManifest((file, file))  # duplicate
    with pytest.raises(InvalidInput):
        FileManifest.from_entries([ManifestEntry("x/y", EntryType.WHITEOUT)])  # no parent
    with pytest.raises(InvalidInput):  # hardlink must name an earlier file with equal attributes
        FileManifest.from_entries(
            [
                file,
                ManifestEntry(
                    "b", EntryType.HARDLINK, mode=0o600, uid=0, gid=0, size=0, sha256=H, link="a"
                ),
            ]
        )
    for bad in (
        dict(path="/a"),
        dict(path="a/../b"),
        dict(path="a//b"),
        dict(path="a/"),
        dict(path="a\x00"),
        dict(mode=0o10000),
        dict(uid=-1),
        dict(sha256="A" * 64),
        dict(link="x"),
        dict(capability=b""),
    ):
        fields = dict(path="a", type=EntryType.FILE, mode=0o644, uid=0, gid=0, size=0, sha256=H)
        fields.update(bad)
        with pytest.raises(InvalidInput):
            ManifestEntry(**fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ManifestEntry("c", EntryType.CHARDEV, mode=0, uid=0, gid=0, devmajor=0, devminor=0)


def test_limits_on_parse() -> None:
    data = small().canonical_bytes()
    with pytest.raises(TooLarge):
        FileManifest.from_canonical_bytes(data, limits=ManifestLimits(max_manifest_bytes=10))
    with pytest.raises(TooLarge):
        FileManifest.from_canonical_bytes(data, limits=ManifestLimits(max_entries=2))


def test_tree_digest_and_inclusion_proofs() -> None:
    empty = FileManifest(())
    assert empty.tree_digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    m = small()
    leaves = [e.canonical_bytes() for e in m.entries]
    l0, l1, l2 = (hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves)
    n01 = hashlib.sha256(b"\x01" + l0 + l1).digest()
    assert m.tree_digest == "sha256:" + hashlib.sha256(b"\x01" + n01 + l2).hexdigest()
    for size in range(1, 18):
        leaves = [bytes([i]) for i in range(size)]
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert root_from_inclusion_proof(leaves[index], index, size, proof) == root
            assert root_from_inclusion_proof(b"other", index, size, proof) != root
    index, proof = m.inclusion_proof("d/\n")
    got = root_from_inclusion_proof(
        m.entries[index].canonical_bytes(), index, len(m.entries), proof
    )
    assert "sha256:" + got.hex() == m.tree_digest
    with pytest.raises(InvalidInput):
        m.inclusion_proof("nope")


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
ids = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def manifests(draw: st.DrawFn) -> FileManifest:
    entries: dict[str, ManifestEntry] = {}
    dirs = [""]
    for _ in range(draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(dirs))
        path = f"{parent}/{draw(names)}" if parent else draw(names)
        if path in entries:
            continue
        kind = draw(st.sampled_from(list(EntryType)))
        owned = dict(mode=draw(st.integers(0, 0o7777)), uid=draw(ids), gid=draw(ids))
        cap = draw(st.none() | st.binary(min_size=1, max_size=24))
        if kind in (EntryType.DIR, EntryType.OPAQUE_DIR):
            entry = ManifestEntry(path, kind, capability=cap, **owned)
            dirs.append(path)
        elif kind in (EntryType.FILE, EntryType.HARDLINK):
            sha = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
            entry = ManifestEntry(
                path,
                EntryType.FILE,
                size=draw(st.integers(0, 2**40)),
                sha256=sha,
                capability=cap,
                **owned,
            )
        elif kind is EntryType.SYMLINK:
            entry = ManifestEntry(path, kind, uid=owned["uid"], gid=owned["gid"], link=draw(names))
        elif kind is EntryType.WHITEOUT:
            entry = ManifestEntry(path, kind)
        elif kind in (EntryType.CHARDEV, EntryType.BLOCKDEV):
            entry = ManifestEntry(
                path, kind, devmajor=draw(ids), devminor=draw(st.integers(1, 99)), **owned
            )
        else:
            entry = ManifestEntry(path, kind, **owned)
        entries[path] = entry
    return FileManifest.from_entries(entries.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_fuzz_round_trip(m: FileManifest) -> None:
    data = m.canonical_bytes()
    parsed = FileManifest.from_canonical_bytes(data)
    assert parsed == m and parsed.canonical_bytes() == data and parsed.tree_digest == m.tree_digest


@settings(max_examples=200, deadline=None)
@given(manifests(), st.data())
def test_fuzz_mutations_are_rejected_or_canonical(m: FileManifest, data: st.DataObject) -> None:
    raw = bytearray(m.canonical_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    try:
        parsed = FileManifest.from_canonical_bytes(bytes(raw))
    except InvalidInput:
        return
    # Anything accepted is canonical: its bytes (hence its sha256) are unique.
    assert parsed.canonical_bytes() == bytes(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_crash(blob: bytes) -> None:
    try:
        FileManifest.from_canonical_bytes(blob)
    except InvalidInput:
        pass
