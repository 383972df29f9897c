# SPDX-License-Identifier: Apache-2.0
"""Hypothesis: random and mutated layer tars end in a manifest or a refusal, quickly.

No input may raise anything but InvalidInput (TooLarge is one), and none may
take long: the reader is linear in the input.
"""

from __future__ import annotations

import io
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput
from attestor.manifest import ManifestLimits, manifest_from_tar
from attestor.manifest._tarfields import parse_pax
from tests.unit.manifest._rawtar import END, base256, data, gnu_long, header, pax, pax_record

LIMITS = ManifestLimits(max_entries=500, max_tar_header_bytes=4096)
SEGMENTS = st.lists(st.sampled_from([b"a", b"b", b".", b"..", b"", b".wh.a", b".wh..wh..opq"]))
NAMES = SEGMENTS.map(lambda parts: b"/".join(parts)) | st.binary(max_size=120)
# Mostly valid values, so that many layers get past the header checks.
NUMBERS = st.one_of(
    st.integers(0, 0o7777),
    st.integers(0, 0o7777777),
    st.integers(0, 2**40).map(lambda v: base256(v, 8)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: base256(v, 8)),
    st.binary(min_size=8, max_size=8),
    st.just(0o755),
    st.just(0),
)
PAX_KEYS = st.sampled_from(
    [b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime", b"comment", b"GNU.sparse.major"]
    + [b"SCHILY.xattr.security.capability", b"SCHILY.xattr.user.x", b"SCHILY.xattr.trusted.y"]
)


@st.composite
def member(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(b"0000055123456\x00xxLKg7S"))
    flag = bytes([kind])
    if flag == b"x":
        records = b"".join(
            pax_record(k, v)
            for k, v in draw(st.lists(st.tuples(PAX_KEYS, st.binary(max_size=20)), max_size=4))
        )
        return pax(records)
    if flag in (b"L", b"K"):
        return gnu_long(flag, draw(NAMES))
    content = draw(st.binary(max_size=700))
    block = header(
        draw(NAMES)[:100],
        typeflag=flag,
        size=len(content),
        mode=draw(NUMBERS),
        uid=draw(NUMBERS),
        gid=draw(NUMBERS),
        link=draw(NAMES)[:100],
        devmajor=draw(st.integers(0, 5)),
        devminor=draw(st.integers(0, 5)),
        checksum=draw(
            st.sampled_from(["octal"] * 12 + ["go", "nul-led", "spaces", "signed", "wrong"])
        ),
    )
    return block + data(content)


@st.composite
def layer(draw: st.DrawFn) -> bytes:
    raw = bytearray(b"".join(draw(st.lists(member(), max_size=8))) + END)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 4]))):  # flip bytes anywhere
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.sampled_from([None] * 4 + [len(raw) // 2, len(raw) - 1]))
    return bytes(raw if cut is None else raw[:cut])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer())
def test_random_layers_give_a_manifest_or_a_refusal(raw: bytes) -> None:
    start = time.perf_counter()
    try:
        manifest_from_tar(io.BytesIO(raw), limits=LIMITS)
    except InvalidInput:
        pass
    assert time.perf_counter() - start < 2.0


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_pax_bodies_parse_or_are_refused(body: bytes) -> None:
    try:
        records = parse_pax(body)[0]
    except InvalidInput:
        return
    for key, value in records.items():
        assert key and b"=" not in key and b"\x00" not in key
        assert b"\x00" not in value or key not in (b"path", b"linkpath", b"uname", b"gname")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(PAX_KEYS.filter(lambda k: b"sparse" not in k), st.binary(max_size=40))))
def test_written_pax_records_parse_back(pairs: list[tuple[bytes, bytes]]) -> None:
    pairs = [(k, v) for k, v in pairs if not (b"\x00" in v and k in (b"path", b"linkpath"))]
    body = b"".join(pax_record(k, v) for k, v in pairs)
    assert parse_pax(body) == (dict(pairs), len(pairs))
