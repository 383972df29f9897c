# SPDX-License-Identifier: Apache-2.0
"""Build key-signed Sigstore bundles in tests, with a throwaway one-leaf "Rekor".

The fake log signs its checkpoint and SET with its own key and goes in a custom
trusted root, so the managed-key path is checked end to end without network.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.dsse import pae

MEDIA_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class FakeLog:
    """A one-entry transparency log with its own signing key."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    origin: str = "fake.rekor.test - 1"

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(spki(self.key.public_key())).digest()

    def trusted_root(self) -> bytes:
        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [
                    {
                        "baseUrl": "https://fake.rekor.test",
                        "hashAlgorithm": "SHA2_256",
                        "publicKey": {
                            "rawBytes": _b64(spki(self.key.public_key())),
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                            "validFor": {"start": "2020-01-01T00:00:00Z"},
                        },
                        "logId": {"keyId": _b64(self.log_id)},
                    }
                ],
                "certificateAuthorities": [],
                "ctlogs": [],
                "timestampAuthorities": [],
            }
        ).encode()

    def entry(self, body: dict[str, Any], integrated_time: int = 1_700_000_000) -> dict[str, Any]:
        canonical = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        leaf = hashlib.sha256(b"\x00" + canonical).digest()
        note = f"{self.origin}\n1\n{_b64(leaf)}\n"
        sig = self.key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 fake.rekor.test {_b64(self.log_id[:4] + sig)}\n"
        set_payload = rfc8785.dumps(
            {
                "body": _b64(canonical),
                "integratedTime": integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": 0,
            }
        )
        set_sig = self.key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(leaf),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(canonical),
        }


def message_bundle(
    signer: ec.EllipticCurvePrivateKey, artifact: bytes, log: FakeLog | None = None
) -> dict[str, Any]:
    digest = hashlib.sha256(artifact).digest()
    sig = signer.sign(artifact, ec.ECDSA(hashes.SHA256()))
    entries = []
    if log is not None:
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": _b64(sig),
                    "publicKey": {"content": _b64(pem(signer.public_key()))},
                },
            },
        }
        entries.append(log.entry(body))
    return {
        "mediaType": MEDIA_V03,
        "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": entries},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
            "signature": _b64(sig),
        },
    }


def statement(artifact: bytes) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": hashlib.sha256(artifact).hexdigest()}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            # The smallest predicate the SLSA provenance v1 schema accepts: DSSE
            # bundles go through the statement verifier's default rules.
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://example.test/build",
                    "externalParameters": {},
                },
                "runDetails": {"builder": {"id": "https://example.test/builder"}},
            },
        }
    ).encode()


def dsse_bundle(
    signer: Any, payload: bytes, log: FakeLog | None = None, *, sign: Any = None
) -> dict[str, Any]:
    ptype = "application/vnd.in-toto+json"
    if sign is None:
        sig = (
            signer.sign(pae(ptype, payload), ec.ECDSA(hashes.SHA256()))
            if isinstance(signer, ec.EllipticCurvePrivateKey)
            else signer.sign(pae(ptype, payload))
        )
    else:
        sig = sign
    entries = []
    if log is not None:
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": "00" * 32},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": _b64(sig), "verifier": _b64(pem(signer.public_key()))}
                ],
            },
        }
        entries.append(log.entry(body))
    return {
        "mediaType": MEDIA_V03,
        "verificationMaterial": {"publicKey": {"hint": "test"}, "tlogEntries": entries},
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": ptype,
            "signatures": [{"sig": _b64(sig), "keyid": ""}],
        },
    }


def encode(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()
