# SPDX-License-Identifier: Apache-2.0
"""Digest types and parsing shared by every part (pure, no I/O)."""

from __future__ import annotations

import hashlib
import re
from typing import NewType

from attestor.errors import InvalidInput

__all__ = [
    "Digest",
    "KeyId",
    "Sha256Hex",
    "chain_ids",
    "parse_digest",
    "sha256_digest",
    "sha256_hex",
]

#: 64 lowercase hex characters, no algorithm prefix.
Sha256Hex = NewType("Sha256Hex", str)
#: An OCI digest string, ``sha256:<64 hex>``.
Digest = NewType("Digest", str)
#: A signing key id as published in ``GET /v1/keys``.
KeyId = NewType("KeyId", str)

_SHA256_RE = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse_digest(value: str) -> Sha256Hex:
    """Return the hex part of a ``sha256:<hex>`` digest.

    Raises:
        InvalidInput: if ``value`` is not exactly ``sha256:`` and 64 lowercase hex.
    """
    match = _SHA256_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"not a sha256 digest: {str(value)[:80]!r}")
    return Sha256Hex(match.group(1))


def sha256_hex(data: bytes) -> Sha256Hex:
    """Hex sha256 of ``data``."""
    return Sha256Hex(hashlib.sha256(data).hexdigest())


def sha256_digest(data: bytes) -> Digest:
    """``sha256:<hex>`` of ``data``."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """OCI chainIDs of a layer stack, bottom layer first.

    ``chain[0] = diffID[0]``; ``chain[i] = sha256(chain[i-1] + " " + diffID[i])``
    (OCI image-spec, config.md "Layer ChainID"). containerd names committed
    snapshots by these.
    """
    chain: list[Digest] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(sha256_digest(f"{chain[-1]} {diff_id}".encode()))
    return chain
