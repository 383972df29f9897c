# SPDX-License-Identifier: Apache-2.0
"""Unencrypted PEM private key files, as a mounted Secret would hold them."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = ["PrivateKey", "write_private_key"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def write_private_key(path: Path, key: PrivateKey) -> Path:
    """Write ``key`` as PKCS#8 PEM to ``path`` (mode 0600, parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path
