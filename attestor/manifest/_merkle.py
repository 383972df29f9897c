# SPDX-License-Identifier: Apache-2.0
"""RFC 6962 (section 2.1) Merkle tree hash and inclusion proofs over SHA-256.

Hand-written because it is 60 lines and the maintained implementations
(sigstore, rekor clients) keep theirs internal; the domain separation is the
RFC's: leaves hash ``0x00 || leaf``, nodes hash ``0x01 || left || right``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "RootBuilder",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "root_from_inclusion_proof",
]


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    # The largest power of two strictly smaller than n (RFC 6962 "k").
    return 1 << ((n - 1).bit_length() - 1)


def _root(hashes: Sequence[bytes]) -> bytes:
    # MTH of a non-empty run of leaf hashes, as a subtree of an audit path.
    builder = RootBuilder()
    for node in hashes:
        builder.push(node)
    return builder.root()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(leaves); the empty tree hashes to ``SHA-256("")``.

    The whole-list form of :class:`RootBuilder`, which computes it.
    """
    builder = RootBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()


class RootBuilder:
    """MTH over leaves added one at a time, in O(log n) memory.

    The one tree-hash fold of the package: :func:`merkle_root` and the
    subtree hashes of :func:`inclusion_proof` go through it too. Keeps the
    roots of the complete subtrees so far (sizes are distinct powers of two,
    largest first); folding them right to left gives the RFC 6962 root, whose
    split is also at the largest power of two.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []

    def add(self, leaf: bytes) -> None:
        """Append one leaf (its JCS bytes, not its hash)."""
        self.push(leaf_hash(leaf))

    def push(self, node: bytes) -> None:
        """Append one leaf given by its :func:`leaf_hash`."""
        size = 1
        stack = self._stack
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            size, node = size * 2, _node(left, node)
        stack.append((size, node))

    def root(self) -> bytes:
        """MTH of the leaves added; the empty tree hashes to ``SHA-256("")``."""
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1][1]
        for _size, left in reversed(self._stack[:-1]):
            node = _node(left, node)
        return node


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 6962 audit path PATH(index, leaves), bottom-up.

    Raises:
        IndexError: if ``index`` is not a leaf position.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside 0..{len(leaves) - 1}")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    proof: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        if hi - lo == 1:
            return
        k = _split(hi - lo)
        if index < lo + k:
            walk(lo, lo + k)
            proof.append(_root(hashes[lo + k : hi]))
        else:
            walk(lo + k, hi)
            proof.append(_root(hashes[lo : lo + k]))

    walk(0, len(hashes))
    return proof


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from one leaf and its audit path (RFC 9162 2.1.3.2).

    Compare the result with the expected root in constant time.

    Raises:
        ValueError: if the proof length does not fit ``index`` and ``size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside tree of size {size}")
    fn, sn = index, size - 1
    result = leaf_hash(leaf)
    for sibling in proof:
        if sn == 0:
            raise ValueError("inclusion proof too long")
        if fn & 1 or fn == sn:
            result = _node(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = _node(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof too short")
    return result
