# SPDX-License-Identifier: Apache-2.0
"""Writes vector.json: a key set rotation signed with fixed Ed25519 keys (deterministic).

Run from the repository root: ``.venv/bin/python tests/assets/key-set-vector/make_vector.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner

from attestor.signing.keys import public_key_info
from attestor.signing.keyset import KeySetKey, build_key_set, sign_key_set


def signer(seed: int) -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def pem(s: CryptoSigner) -> str:
    key = s.public_key._crypto_key()  # noqa: SLF001
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def make() -> dict[str, object]:
    old, new = signer(1), signer(2)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    t1 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    old_info, new_info = public_key_info(pem(old)), public_key_info(pem(new))
    first = build_key_set(
        [KeySetKey(keyid=old_info.keyid, algorithm="ed25519",
                   public_key_pem=old_info.public_key_pem, status="active", created=t0)]
    )  # fmt: skip
    second = build_key_set(
        [
            KeySetKey(keyid=old_info.keyid, algorithm="ed25519",
                      public_key_pem=old_info.public_key_pem, status="retired", created=t0,
                      retired=t1),
            KeySetKey(keyid=new_info.keyid, algorithm="ed25519",
                      public_key_pem=new_info.public_key_pem, status="active", created=t1),
        ]
    )  # fmt: skip
    return {
        "old_public_key_pem": old_info.public_key_pem,
        "new_public_key_pem": new_info.public_key_pem,
        "first": json.loads(sign_key_set(first, [(old, old_info.keyid)]).to_json()),
        "rotation": json.loads(
            sign_key_set(second, [(new, new_info.keyid), (old, old_info.keyid)]).to_json()
        ),
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("vector.json")
    out.write_text(json.dumps(make(), indent=2, sort_keys=True) + "\n")
