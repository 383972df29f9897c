# SPDX-License-Identifier: Apache-2.0
"""Verify one layer's signed statement and the manifest it names.

The server is not trusted: the envelope is verified against the keys pinned
at registration (``attestor.verify.Verifier``), the statement must name this
layer's blob digest, diffID and chainID, and the manifest must hash to the
digest and tree digest the signed statement carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from agent.containerd import LayerInfo
from attestor.digests import Digest, Sha256Hex, parse_digest
from attestor.errors import InvalidInput, Unavailable, VerificationError
from attestor.manifest import AttestedManifest
from attestor.verify import VerifiedStatement, Verifier

__all__ = ["StatementRefs", "statement_refs", "verify_layer"]


@dataclass(frozen=True)
class StatementRefs:
    """What a verified layer statement commits to."""

    diff_id: Digest
    chain_id: Digest
    manifest_sha256: Sha256Hex
    tree_digest: str


def _byproduct(items: list[Any], name: str) -> Mapping[str, Any]:
    found = [i for i in items if isinstance(i, dict) and i.get("name") == name]
    if len(found) != 1:
        raise VerificationError(f"statement has {len(found)} byproducts named {name!r}, need 1")
    return found[0]


def _sha256_of(item: Mapping[str, Any], what: str) -> Sha256Hex:
    digest = item.get("digest")
    value = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(value, str):
        raise VerificationError(f"statement {what} has no sha256 digest")
    try:
        return parse_digest("sha256:" + value)
    except InvalidInput as e:
        raise VerificationError(f"statement {what}: {e.message}") from e


def statement_refs(statement: Mapping[str, Any]) -> StatementRefs:
    """Read diffID, chainID and the manifest reference from ``runDetails.byproducts``.

    Raises:
        VerificationError: if the statement does not carry them exactly once.
    """
    predicate = statement.get("predicate")
    run = predicate.get("runDetails") if isinstance(predicate, dict) else None
    items = run.get("byproducts") if isinstance(run, dict) else None
    if not isinstance(items, list):
        raise VerificationError("statement has no runDetails.byproducts")
    manifest = _byproduct(items, "layer-manifest")
    annotations = manifest.get("annotations")
    tree = annotations.get("treeDigest") if isinstance(annotations, dict) else None
    if not isinstance(tree, str):
        raise VerificationError("statement layer-manifest has no treeDigest")
    return StatementRefs(
        diff_id=Digest("sha256:" + _sha256_of(_byproduct(items, "diffID"), "diffID")),
        chain_id=Digest("sha256:" + _sha256_of(_byproduct(items, "chainID"), "chainID")),
        manifest_sha256=_sha256_of(manifest, "layer-manifest"),
        tree_digest=tree,
    )


def verify_layer(
    verifier: Verifier,
    envelope: bytes,
    layer: LayerInfo,
    fetch_manifest: Callable[[Sha256Hex], BinaryIO],
) -> tuple[VerifiedStatement, AttestedManifest]:
    """Verify an envelope for ``layer`` and the manifest its statement names.

    Raises:
        VerificationError: bad signature, another subject, another diffID or
            chainID, or a manifest that does not match the signed digests
            (``detail["revoked"]`` is True for a revoked attestation).
        InvalidInput: the envelope or the manifest is malformed.
        Unavailable: the manifest stream failed while it was read.
        Error: whatever ``fetch_manifest`` raises.
    """
    verified = verifier.verify_envelope(envelope, artifact_digest=layer.digest)
    refs = statement_refs(verified.statement)
    if refs.diff_id != layer.diff_id:
        raise VerificationError(f"statement diffID {refs.diff_id} != layer {layer.diff_id}")
    if refs.chain_id != layer.chain_id:
        raise VerificationError(f"statement chainID {refs.chain_id} != layer {layer.chain_id}")
    # The compact form (the agent keeps one for every lower layer), parsed as
    # it is read: the whole canonical bytes are never held. Its sha256 is over
    # exactly the bytes parsed, and is checked against the statement below.
    try:
        with fetch_manifest(refs.manifest_sha256) as stream:
            manifest = AttestedManifest.from_canonical_stream(stream.read)
    except OSError as e:
        raise Unavailable(f"reading manifest {refs.manifest_sha256}: {e}") from None
    if manifest.sha256 != "sha256:" + refs.manifest_sha256:
        raise VerificationError(
            f"manifest is {manifest.sha256}, statement says {refs.manifest_sha256}"
        )
    if manifest.tree_digest != refs.tree_digest:
        raise VerificationError(
            f"manifest tree digest {manifest.tree_digest} != statement {refs.tree_digest}"
        )
    return verified, manifest
