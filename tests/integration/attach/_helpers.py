# SPDX-License-Identifier: Apache-2.0
"""Helpers for the attach tests: an image copy and statements signed for it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from attestor.digests import Digest, chain_ids
from attestor.registry.reference import ImageReference
from attestor.services.attach import AttachItem
from attestor.signing.bundle import bundle_from_envelope
from attestor.signing.dsse import sign_envelope
from attestor.signing.keys import PublicKeyInfo
from attestor.statement import (
    PREDICATE_TYPE,
    ImageInfo,
    ManifestRef,
    ParentRef,
    build_layer_statement,
    statement_bytes,
)

NOW = datetime(2026, 11, 27, 5, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Image:
    """A copy of the sample image in its own repository, pinned by digest."""

    ref: ImageReference
    manifest: bytes
    manifest_digest: str
    media_type: str
    layers: tuple[tuple[str, str, str], ...]  # (digest, media type, diff_id)

    @property
    def repo_path(self) -> str:
        return self.ref.repository


def sign_items(image: Image, key: tuple[Any, PublicKeyInfo]) -> list[AttachItem]:
    """One signed SLSA statement per layer, chained, as envelope + bundle bytes."""
    signer, info = key
    items: list[AttachItem] = []
    chains = chain_ids([Digest(diff) for _, _, diff in image.layers])
    parent: ParentRef | None = None
    for index, (digest, media_type, diff_id) in enumerate(image.layers):
        statement = build_layer_statement(
            image=ImageInfo(
                name=image.ref.name,
                reference=str(image.ref),
                manifest_digest=image.manifest_digest,
                manifest_media_type=image.media_type,
            ),
            layer_index=index,
            layer_digest=digest,
            layer_media_type=media_type,
            diff_id=diff_id,
            chain_id=chains[index],
            history_entry=None,
            parent=parent,
            manifest_ref=ManifestRef(
                sha256="sha256:" + "ab" * 32, tree_digest="sha256:" + "cd" * 32, uri="urn:test"
            ),
            policy_id="dev",
            policy_version="1",
            builder_id="https://attestor.test/builder",
            invocation_id=str(uuid.uuid4()),
            started_on=NOW,
            finished_on=NOW,
        )
        envelope = sign_envelope(statement_bytes(statement), signer, keyid=info.keyid)
        envelope_json = envelope.to_json()
        bundle = json.dumps(bundle_from_envelope(envelope, keyid=info.keyid)).encode()
        items.append(AttachItem(envelope_json, bundle, PREDICATE_TYPE))
        parent = ParentRef(
            chain_id=chains[index], envelope_sha256=hashlib.sha256(envelope_json).hexdigest()
        )
    return items
