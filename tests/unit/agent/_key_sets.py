# SPDX-License-Identifier: Apache-2.0
"""Signed key sets for the agent's tests, made with real keys and the server's code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner

from attestor.signing.keys import public_key_info
from attestor.signing.keyset import KeySetKey, build_key_set, key_set_version, sign_key_set

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


def public_pem(signer: CryptoSigner) -> str:
    return (
        signer.public_key._crypto_key()  # noqa: SLF001
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def entry(signer: CryptoSigner, status: str = "active", *, age: int = 0) -> KeySetKey:
    """The key-set entry of ``signer``'s key (``age`` hours after T0)."""
    info = public_key_info(public_pem(signer))
    created = T0 + timedelta(hours=age)
    return KeySetKey(
        keyid=info.keyid,
        algorithm=info.algorithm,
        public_key_pem=info.public_key_pem,
        status=status,
        created=created,
        retired=created + timedelta(minutes=1) if status != "active" else None,
        revoked=created + timedelta(minutes=2) if status == "revoked" else None,
    )


def signed_set(
    keys: Sequence[KeySetKey], signers: Sequence[CryptoSigner], *, version: int | None = None
) -> bytes:
    """The DSSE envelope JSON of the set of ``keys``, signed by ``signers``.

    ``version`` overrides the computed one (it must not be below it).
    """
    if version is None:
        payload = build_key_set(keys)
    else:
        assert version >= key_set_version(keys)
        payload = json.dumps(
            {"version": version, "keys": [k.to_dict() for k in keys]},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    pairs = [(s, s.public_key.keyid) for s in signers]
    return sign_key_set(payload, pairs).to_json()
