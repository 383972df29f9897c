# SPDX-License-Identifier: Apache-2.0
"""The API-facing documents of issued attestations: summaries, results, bundles."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from attestor.dsse import parse_envelope
from attestor.signing.bundle import bundle_from_envelope
from attestor.store.attestations import AttestationRow

if TYPE_CHECKING:
    from attestor.services.issuance import IssueResult

__all__ = ["attestation_document", "bundle_json", "result_document"]


def bundle_json(row: AttestationRow) -> bytes:
    """The Sigstore bundle v0.3 of an attestation, as served and attached.

    Keyless: the stored bundle (Fulcio certificate + Rekor entry), verbatim.
    Key-signed: built from the stored envelope with the keyid as public key hint.

    Raises:
        InvalidInput: the stored envelope does not parse (a corrupted row).
    """
    if row.bundle is not None:
        return row.bundle
    bundle = bundle_from_envelope(parse_envelope(row.envelope), keyid=row.keyid)
    return json.dumps(bundle, separators=(",", ":")).encode()


def attestation_document(row: AttestationRow) -> dict[str, Any]:
    """The API's summary of one attestation (URLs relative to the server)."""
    return {
        "id": row.id,
        "image": {
            "registry": row.registry,
            "repository": row.repository,
            "digest": row.manifest_digest,
        },
        "keyid": row.keyid,
        "layer": {"index": row.layer_index, "digest": row.layer_digest, "diff_id": row.diff_id},
        "status": row.status,
        "envelope_url": f"/v1/attestations/{row.id}/envelope",
        "bundle_url": f"/v1/attestations/{row.id}/bundle",
        "manifest": {
            "sha256": row.manifest_sha256,
            "tree_digest": row.tree_digest,
            "url": f"/v1/manifests/{row.manifest_sha256}",
        },
    }


def result_document(result: IssueResult) -> dict[str, Any]:
    """The body of ``POST /v1/attestations`` (also a job's result), JSON-ready."""
    image: dict[str, Any] = {"reference": result.reference, "digest": result.digest}
    if result.tag is not None:
        image["tag"] = result.tag
    document: dict[str, Any] = {
        "image": image,
        "attestations": [attestation_document(row) for row in result.attestations],
    }
    if result.attached is not None:
        document["attached"] = {
            "cosign_tag": result.attached.cosign_tag,
            "cosign_manifest_digest": result.attached.cosign_manifest_digest,
            "referrers": list(result.attached.referrers),
            "referrers_tag": result.attached.referrers_tag,
        }
    return document
