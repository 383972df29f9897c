# SPDX-License-Identifier: Apache-2.0
"""The tree digest against the definition in docs/layer-manifest.md section 8."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.manifest._merkle import (
    RootBuilder,
    inclusion_proof,
    merkle_root,
    root_from_inclusion_proof,
)


def _mth(leaves: list[bytes]) -> bytes:
    # Transcribed from the spec: MTH({}) = SHA-256(""), MTH({d0}) =
    # SHA-256(0x00 || d0), else split at the largest power of two < n.
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


_LEAVES = st.lists(st.binary(max_size=40), max_size=70)


def test_small_trees_by_hand() -> None:
    h = hashlib.sha256
    a, b, c = (h(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    assert merkle_root([]) == h(b"").digest()
    assert merkle_root([b"a"]) == a
    assert merkle_root([b"a", b"b", b"c"]) == h(b"\x01" + h(b"\x01" + a + b).digest() + c).digest()


@settings(max_examples=300, deadline=None)
@given(_LEAVES)
def test_both_forms_equal_the_spec_definition(leaves: list[bytes]) -> None:
    builder = RootBuilder()
    for leaf in leaves:
        builder.add(leaf)
    assert builder.root() == merkle_root(leaves) == _mth(leaves)


@settings(max_examples=200, deadline=None)
@given(_LEAVES.filter(bool), st.data())
def test_inclusion_proofs_lead_to_the_spec_root(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(leaves, index)
    assert root_from_inclusion_proof(leaves[index], index, len(leaves), proof) == _mth(leaves)
