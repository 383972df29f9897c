# SPDX-License-Identifier: Apache-2.0
"""Regenerate vectors.json from the TEST-ONLY keys in this directory.

Run from the repository root:
``.venv/bin/python tests/assets/revocation-feed-vectors/make_vectors.py``.
The keys are test keys, published on purpose; never trust them for anything.
Ed25519 signatures are deterministic, so those vectors are byte-exact; ECDSA
signatures are randomized, so that vector only checks verification.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner, SSlibKey

from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope
from attestor.revocation import Revocation
from attestor.revocation_feed import build_feed_page, feed_etag, sign_feed_page
from attestor.signing.dsse import sign_envelope

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
SERVER_ID = "attestor-test-1"
MAX_AGE = 900


def signer(name: str) -> CryptoSigner:
    key = serialization.load_pem_private_key((HERE / f"{name}.key.pem").read_bytes(), None)
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def revocation_docs() -> list[dict[str, Any]]:
    h = "sha256:"
    targets: list[dict[str, Any]] = [
        {
            "kind": "attestation",
            "attestation_id": "6f1c2d9e-5b7a-4c1e-9f00-000000000001",
            "pae_sha256": "1" * 64,
        },
        {"kind": "subject", "digest": h + "2" * 64},
        {"kind": "image", "digest": h + "3" * 64},
        {"kind": "key", "keyid": "4" * 64},
        {"kind": "policy_version", "policy_id": "prod", "policy_version": "7"},
        {
            "kind": "time_window",
            "not_before": "2026-02-27T00:00:00Z",
            "not_after": "2026-02-28T06:30:00Z",
        },
        {"kind": "time_window", "not_before": "2026-02-20T00:00:00Z", "keyid": "5" * 64},
    ]
    return [
        {
            "id": f"rev-{i:04d}",
            "sequence": i,
            "target": target,
            "reason": f"vector {i}: {target['kind']}",
            "actor": "security@example.test",
            "created_at": f"2026-03-01T11:{i:02d}:00Z",
        }
        for i, target in enumerate(targets, start=1)
    ]


def valid(name: str, key: str, since: int, limit: int) -> dict[str, Any]:
    revocations = [Revocation.from_dict(d) for d in revocation_docs()]
    s = signer(key)
    payload = build_feed_page(
        revocations, since=since, limit=limit, now=NOW, server_id=SERVER_ID, latest=7
    )
    page = json.loads(payload)
    return {
        "name": name,
        "key": key,
        "build": {
            "since": since,
            "limit": limit,
            "now": "2026-03-01T12:05:00Z",
            "server_id": SERVER_ID,
            "latest": 7,
        },
        "payload": payload.decode(),
        "envelope": sign_feed_page(payload, s, s.public_key.keyid).to_dict(),
        "etag": feed_etag(
            server_id=SERVER_ID,
            since=since,
            latest=7,
            limit=limit,
            keyid=s.public_key.keyid,
            issued_at=NOW,
        ),
        "verify": {"expected_since": since, "now": "2026-03-01T12:10:00Z", "max_age": MAX_AGE},
        "expect": {
            "next": page["next"],
            "latest": 7,
            "complete": page["complete"],
            "sequences": [r["sequence"] for r in page["revocations"]],
            "signed_by": s.public_key.keyid,
        },
    }


def invalid(first: dict[str, Any]) -> list[dict[str, Any]]:
    s = signer("test-only-ed25519")
    env = first["envelope"]
    hidden = json.loads(first["payload"])
    hidden["revocations"] = hidden["revocations"][:-1]
    hidden["next"] = hidden["revocations"][-1]["sequence"]
    forged = Envelope(
        env["payloadType"],
        json.dumps(hidden, sort_keys=True, separators=(",", ":")).encode(),
        sign_feed_page(first["payload"].encode(), s, s.public_key.keyid).signatures,
    )
    flipped = json.loads(first["payload"])
    flipped["complete"] = True
    as_attestation = sign_envelope(
        first["payload"].encode(), s, keyid=s.public_key.keyid, payload_type=IN_TOTO_PAYLOAD_TYPE
    )
    ok = first["verify"]
    stale_now = (NOW + timedelta(seconds=MAX_AGE + 1)).isoformat().replace("+00:00", "Z")
    return [
        {
            "name": "revocation-hidden",
            "envelope": forged.to_dict(),
            "verify": ok,
            "error": "VerificationError",
            "match": "0 of 1",
        },
        {
            "name": "attestation-payload-type",
            "envelope": as_attestation.to_dict(),
            "verify": ok,
            "error": "VerificationError",
            "match": "payloadType",
        },
        {
            "name": "stale-replay",
            "envelope": env,
            "verify": {**ok, "now": stale_now},
            "error": "VerificationError",
            "match": "stale",
        },
        {
            "name": "cursor-mismatch",
            "envelope": env,
            "verify": {**ok, "expected_since": 2},
            "error": "VerificationError",
            "match": "cursor",
        },
        {
            "name": "signed-but-inconsistent",
            "envelope": sign_feed_page(
                json.dumps(flipped, sort_keys=True, separators=(",", ":")).encode(),
                s,
                s.public_key.keyid,
            ).to_dict(),
            "verify": ok,
            "error": "VerificationError",
            "match": "complete",
        },
        {
            "name": "not-an-envelope",
            "envelope": {"payloadType": FEED, "payload": "e30=", "signatures": []},
            "verify": ok,
            "error": "InvalidInput",
            "match": "at least 1 signature",
        },
    ]


FEED = "application/vnd.attestor.revocation-feed.v2+json"


def main() -> None:
    first = valid("first-page", "test-only-ed25519", since=0, limit=3)
    vectors = {
        "comment": "Revocation feed test vectors (docs/revocation-feed.md). TEST-ONLY keys.",
        "keys": {
            name: {
                "public_pem_file": f"{name}.pub.pem",
                "keyid": signer(name).public_key.keyid,
            }
            for name in ("test-only-ed25519", "test-only-ecdsa-p256")
        },
        "revocations": revocation_docs(),
        "valid": [
            first,
            valid("last-page", "test-only-ed25519", since=3, limit=100),
            valid("caught-up", "test-only-ed25519", since=7, limit=100),
            valid("ecdsa-p256-first-page", "test-only-ecdsa-p256", since=0, limit=3),
        ],
        "invalid": invalid(first),
    }
    (HERE / "vectors.json").write_text(json.dumps(vectors, indent=2) + "\n")


if __name__ == "__main__":
    main()
