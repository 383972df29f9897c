# SPDX-License-Identifier: Apache-2.0
"""Real SLSA layer statements signed with a server's active key (shared by bulk tests)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from attestor.services.keys import active_signer
from attestor.signing.dsse import sign_envelope
from attestor.statement import ImageInfo, ManifestRef, build_layer_statement, statement_bytes

WHEN = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def layer_statement(layer_digest: str, *, policy_id: str = "dev") -> dict[str, Any]:
    return build_layer_statement(
        image=ImageInfo(
            name="127.0.0.1:5000/app",
            reference="127.0.0.1:5000/app:1",
            manifest_digest=digest("manifest"),
            manifest_media_type="application/vnd.oci.image.manifest.v1+json",
            tag="1",
        ),
        layer_index=0,
        layer_digest=layer_digest,
        layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id=digest("diff" + layer_digest),
        chain_id=digest("diff" + layer_digest),
        history_entry=None,
        parent=None,
        manifest_ref=ManifestRef(
            sha256=digest("m" + layer_digest), tree_digest=digest("t" + layer_digest), uri="x:m"
        ),
        policy_id=policy_id,
        policy_version="1",
        builder_id="https://attestor.local/builder/test",
        invocation_id="inv-1",
        started_on=WHEN,
        finished_on=WHEN,
    )


def signed_envelopes(
    factory: sessionmaker[Session], count: int, *, seed: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (layer digest, envelope JSON) pairs signed by the active key."""
    with factory() as session:
        active = active_signer(session)
    out = []
    for i in range(count):
        layer = digest(f"{seed}layer-{i}")
        envelope = sign_envelope(
            statement_bytes(layer_statement(layer)), active.signer, keyid=active.keyid
        )
        out.append((layer, json.loads(envelope.to_json())))
    return out
