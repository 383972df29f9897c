# SPDX-License-Identifier: Apache-2.0
"""Hypothesis strategies for layer tars built from the parts readers disagree on.

Each member is preceded by up to two extension headers (PAX 'x' or 'g'
records, GNU long names or links) and has its numbers written in one of the
encodings Go accepts or refuses (octal, base-256, NUL-led, space-led, no
NUL), one of the magics (ustar, GNU, V7) and one of the checksum forms.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from tests.integration.manifest._go_reading import corpus_generator

__all__ = [
    "NAMES",
    "OVERLAY_NAMES",
    "SEEDS",
    "extension",
    "header_offsets",
    "member",
    "mutate",
    "mutation",
]

corpus = corpus_generator()

#: Member names: plain, directories, a long one (PAX or GNU only), the empty name.
NAMES = ("a", "a/", "d/", "d/e", "./a", "x/y/z", "hi", "long/" + "n" * 120, "")
#: NAMES plus whiteouts and opaque markers, for the containerd comparison.
OVERLAY_NAMES = (*NAMES, ".wh.a", "d/.wh.e", "d/.wh..wh..opq", ".wh.hi", "x/y/.wh..wh..opq")
NUMBERS = ["octal", "b256", "nul-led", "space-led", "no-nul"]


def _number(value: int, width: int, style: str) -> bytes:
    if style == "b256":
        return corpus.base256(value, width)
    if style == "nul-led":
        return b"\x00" + corpus.octal(value, width - 1)
    if style == "space-led":
        return b" " + f"{value:0{width - 2}o}".encode() + b" "
    if style == "no-nul":
        return f"{value:0{width}o}".encode()
    return bytes(corpus.octal(value, width))


@st.composite
def extension(draw: st.DrawFn, names: Sequence[str]) -> bytes:
    """A PAX 'x' or 'g' header with a few records, or a GNU long name or link."""
    kind = draw(st.sampled_from(["x", "x", "x", "L", "K", "g"]))
    if kind in ("L", "K"):
        return bytes(corpus.gnu_long(draw(st.sampled_from(names)), kind.encode()))
    values = {
        "path": names,
        "linkpath": names,
        "size": ["0", "3", "700", "", "-1", " 3"],
        "uid": ["0", "5", "", "4294967296"],
        "gid": ["0", "9", ""],
        "mtime": ["1.5", "x"],
    }
    keys = draw(st.lists(st.sampled_from(sorted(values)), min_size=1, max_size=3))
    records = [(k, draw(st.sampled_from(values[k]))) for k in keys]
    return bytes(corpus.pax(records, typeflag=kind.encode()))


@st.composite
def member(draw: st.DrawFn, names: Sequence[str]) -> bytes:
    """Extension headers, then one member with its fields encoded in varied ways."""
    typeflag = draw(st.sampled_from([b"0", b"0", b"\x00", b"5", b"2", b"1", b"6"]))
    data = draw(st.sampled_from([b"", b"hi\n", b"z" * 700])) if typeflag in b"0\x00" else b""
    size_style, mode_style, uid_style = (draw(st.sampled_from(NUMBERS)) for _ in range(3))
    block = corpus.header(
        draw(st.sampled_from([n for n in names if 0 < len(n) <= 100])),
        typeflag=typeflag,
        size=_number(len(data), 12, size_style),
        mode=_number(draw(st.sampled_from([0o644, 0o755, 0o4755, 0o2750])), 8, mode_style),
        uid=_number(draw(st.sampled_from([0, 7, 70000])), 8, uid_style),
        linkname=draw(st.sampled_from(["hi", "a", "d/e", ""])) if typeflag in b"12" else "",
        magic=draw(st.sampled_from([corpus.USTAR] * 4 + [corpus.GNU, corpus.V7])),
        tail=draw(st.sampled_from([b""] * 4 + [b"pre"])),
        checksum=draw(st.sampled_from(["gnu", "gnu", "nul", "space", "nul-led"])),
    )
    extensions = draw(st.lists(extension(names), max_size=2))
    return b"".join(extensions) + block + corpus.data_blocks(data)


# --- mutations of valid corpus layers ---------------------------------------------


#: Valid layers to mutate: plain ustar, PAX records, a GNU long name, base-256
#: owners, a directory with a size, a hardlink and a symlink.
SEEDS = [
    "chksum-gnu",
    "pax-path",
    "pax-size",
    "gnu-longname",
    "b256-uid-gid",
    "dir-with-size",
    "hardlink-with-size",
    "pax-linkpath",
    "rega-trailing-slash",
]

#: Start offsets of the header fields, so that mutations hit field edges often.
FIELD_OFFSETS = [0, 99, 100, 107, 108, 116, 124, 135, 136, 148, 154, 155, 156, 157, 257, 263, 345]
#: Bytes two readers are likely to disagree on.
INTERESTING = [0x00, 0x20, 0x2B, 0x2F, 0x30, 0x31, 0x37, 0x38, 0x4C, 0x5F, 0x67, 0x78, 0x80, 0xFF]


def header_offsets(layer: bytes) -> list[int]:
    """Offsets of the header blocks of a well-formed seed layer (ustar sizes only)."""
    offsets, pos = [], 0
    while pos + corpus.BLOCK <= len(layer) and layer[pos : pos + corpus.BLOCK].strip(b"\x00"):
        block = layer[pos : pos + corpus.BLOCK]
        offsets.append(pos)
        size_field = block[124:136]
        if size_field[0] & 0x80:
            size = int.from_bytes(bytes([size_field[0] & 0x7F]) + size_field[1:], "big")
        else:
            size = int(size_field.strip(b" \x00") or b"0", 8)
        if block[156:157] in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0  # header-only types: the next block is a header
        pos += corpus.BLOCK + size + (-size % corpus.BLOCK)
    return offsets


def mutate(layer: bytes, mutations: list[tuple[int, int, int]], recompute: bool) -> bytes:
    """``layer`` with bytes set at (header index, offset, value) places.

    An index from ``_DATA`` on names the block after a header instead (PAX
    records, a long name, content); ``recompute`` fixes the checksums of the
    headers touched.
    """
    data = bytearray(layer)
    offsets = header_offsets(layer)
    touched = set()
    for which, offset, value in mutations:
        if which >= _DATA:  # the block after a header: PAX records, a long name, content
            start = offsets[(which - _DATA) % len(offsets)] + corpus.BLOCK
            if start + offset < len(data):
                data[start + offset] = value
            continue
        start = offsets[which % len(offsets)]
        data[start + offset] = value
        touched.add(start)
    if recompute:
        for start in touched:
            block = bytes(data[start : start + corpus.BLOCK])
            data[start : start + corpus.BLOCK] = corpus.set_checksum(block)
    return bytes(data)


_DATA = 8
mutation = st.tuples(
    st.integers(0, _DATA + 1),
    st.one_of(st.sampled_from(FIELD_OFFSETS), st.integers(0, corpus.BLOCK - 1)),
    st.one_of(st.sampled_from(INTERESTING), st.integers(0, 255)),
)
