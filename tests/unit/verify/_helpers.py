# SPDX-License-Identifier: Apache-2.0
"""Keys, statements and a verifier whose predicate schema is one this area owns."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope, pae
from attestor.signing.dsse import sign_envelope
from attestor.verify import TrustedKey, Verifier

#: A predicate type validated against schemas/dsse-envelope.schema.json, so these
#: tests do not depend on the SLSA schema another area writes.
TEST_PREDICATE = "https://attestor.test/predicate/dsse-envelope/v1"
ARTIFACT = hashlib.sha256(b"artifact").hexdigest()


def predicate() -> dict[str, Any]:
    return {"payloadType": "t", "payload": "", "signatures": [{"sig": "AA=="}]}


def statement(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": ARTIFACT}}],
        "predicateType": TEST_PREDICATE,
        "predicate": predicate(),
    }
    doc.update(overrides)
    return doc


def payload(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def trusted(signer: CryptoSigner, keyid: str | None = None) -> TrustedKey:
    return TrustedKey(
        keyid=keyid or signer.public_key.keyid,
        public_key=signer.public_key._crypto_key(),
        algorithm="test",
    )


def verifier(keys: list[TrustedKey], **kwargs: Any) -> Verifier:
    kwargs.setdefault("allowed_predicate_types", frozenset({TEST_PREDICATE}))
    kwargs.setdefault("predicate_schemas", {TEST_PREDICATE: "dsse-envelope"})
    return Verifier(keys=keys, **kwargs)


def sign(
    data: bytes, *signers: CryptoSigner, payload_type: str = "application/vnd.in-toto+json"
) -> Envelope:
    """An envelope with one signature per signer."""
    sigs = []
    for s in signers:
        sigs.extend(
            sign_envelope(data, s, keyid=s.public_key.keyid, payload_type=payload_type).signatures
        )
    envelope = Envelope(payload_type, data, tuple(sigs))
    assert envelope.pae() == pae(payload_type, data)
    return envelope
