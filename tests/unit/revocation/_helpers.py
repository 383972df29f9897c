# SPDX-License-Identifier: Apache-2.0
"""Revocations of every kind, keys and a verifier over our real layer statement."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from securesystemslib.signer import CryptoSigner

from attestor.revocation import (
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    SubjectTarget,
    Target,
    TimeWindowTarget,
)
from attestor.statement import ImageInfo, ManifestRef, build_layer_statement, statement_bytes
from attestor.verify import TrustedKey

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LAYER = "sha256:" + hashlib.sha256(b"layer").hexdigest()
IMAGE = "sha256:" + hashlib.sha256(b"image").hexdigest()
ENVELOPE = hashlib.sha256(b"envelope").hexdigest()


def rev(sequence: int, target: Target, *, reason: str = "test", **kw: Any) -> Revocation:
    return Revocation(
        id=kw.pop("id", f"rev-{sequence}"),
        sequence=sequence,
        target=target,
        reason=reason,
        actor=kw.pop("actor", "admin@example.test"),
        created_at=kw.pop("created_at", T0 + timedelta(seconds=sequence)),
    )


def one_of_each() -> list[Revocation]:
    return [
        rev(1, AttestationTarget("6f1c2d9e-0000-4000-8000-000000000001", ENVELOPE)),
        rev(2, SubjectTarget(LAYER)),
        rev(3, ImageTarget(IMAGE)),
        rev(4, KeyTarget("a" * 64), reason="key leaked"),
        rev(5, PolicyVersionTarget("dev", "3")),
        rev(6, TimeWindowTarget(not_before=T0, not_after=T0 + timedelta(hours=1))),
        rev(7, TimeWindowTarget(not_before=T0, keyid="b" * 64), reason="builder compromised"),
    ]


def trusted(signer: CryptoSigner) -> TrustedKey:
    return TrustedKey(
        keyid=signer.public_key.keyid, public_key=signer.public_key._crypto_key(), algorithm="t"
    )


def layer_statement(
    *,
    layer: str = LAYER,
    image: str = IMAGE,
    policy: tuple[str, str] = ("dev", "1"),
    finished: datetime = T0,
) -> bytes:
    """Our real per-layer SLSA statement (attestor.statement), serialized."""
    doc = build_layer_statement(
        image=ImageInfo(
            name="127.0.0.1:5000/app",
            reference="127.0.0.1:5000/app:1",
            manifest_digest=image,
            manifest_media_type="application/vnd.oci.image.manifest.v1+json",
            tag="1",
        ),
        layer_index=0,
        layer_digest=layer,
        layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id="sha256:" + "d" * 64,
        chain_id="sha256:" + "d" * 64,
        history_entry=None,
        parent=None,
        manifest_ref=ManifestRef(
            sha256="sha256:" + "e" * 64, tree_digest="sha256:" + "f" * 64, uri="urn:test"
        ),
        policy_id=policy[0],
        policy_version=policy[1],
        builder_id="https://attestor.test/builder",
        invocation_id="urn:uuid:00000000-0000-4000-8000-000000000000",
        started_on=finished - timedelta(seconds=1),
        finished_on=finished,
    )
    return statement_bytes(doc)
