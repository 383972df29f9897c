# SPDX-License-Identifier: Apache-2.0
"""The per-layer pipeline of issuance: fetch, scan (or reuse a known scan), check, sign.

Nothing is stored here; :mod:`attestor.services.issuance` stores the result in
one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from attestor.digests import chain_ids, sha256_hex
from attestor.errors import VerificationError
from attestor.manifest import (
    FileManifest,
    LayerScan,
    ScanBudgetExceeded,
    manifest_from_layer_blob,
)
from attestor.policy import Decision
from attestor.registry import ResolvedImage
from attestor.services._layer_scans import KnownScan, known_scans
from attestor.statement import (
    ImageInfo,
    ManifestRef,
    ParentRef,
    align_history,
    build_layer_statement,
    statement_bytes,
)
from attestor.store.attestations import NewAttestation

if TYPE_CHECKING:
    from attestor.services.issuance import IssuanceContext

__all__ = ["SignedLayers", "sign_layers"]


@dataclass(frozen=True)
class SignedLayers:
    """Signed, not yet stored: one attestation and one file manifest per layer."""

    items: tuple[NewAttestation, ...]
    manifests: tuple[FileManifest, ...]


def sign_layers(
    ctx: IssuanceContext,
    resolved: ResolvedImage,
    decision: Decision,
    *,
    now: Callable[[], datetime],
    scan_budget: int | None = None,
) -> SignedLayers:
    """Scan, check and sign each layer of ``resolved``, bottom first, chained to the one below.

    Args:
        ctx: the injected adapters and the active signer.
        resolved: the image, as the registry described it.
        decision: the policy that admitted it.
        now: the clock.
        scan_budget: when set, the layers not scanned before may together
            decompress to at most this many bytes, and their declared
            (compressed) sizes may not exceed it either; past it
            :class:`ScanBudgetExceeded` is raised, before any blob is fetched
            when the declared sizes already exceed it.

    Raises:
        UpstreamError: a blob is missing or does not match its digest.
        TooLarge: a blob or its file manifest over its cap.
        ScanBudgetExceeded: the new layers need more than ``scan_budget``.
        VerificationError: a layer's uncompressed digest differs from its diffID.
    """
    started = now()
    ref = resolved.reference
    pinned = resolved.pinned
    diff_ids = resolved.image_config.diff_ids
    chains = chain_ids(list(diff_ids))
    history = align_history(resolved.image_config.document)
    image = ImageInfo(
        name=ref.name,
        reference=str(ref),
        manifest_digest=resolved.manifest_digest,
        manifest_media_type=resolved.media_type,
        tag=ref.tag,
        index_digest=resolved.index_digest,
        platform=resolved.platform,
    )
    invocation_id = f"urn:uuid:{uuid.uuid4()}"
    items: list[NewAttestation] = []
    manifests: list[FileManifest] = []
    parent: NewAttestation | None = None
    known = known_scans(ctx.session_factory, resolved.layers, chains, limits=ctx.manifest_limits)
    remaining = scan_budget
    if remaining is not None:
        # The registry client holds each blob to its declared size, so this
        # bounds what the request downloads for new layers; and a compressed
        # layer is hardly ever larger than its tar, so a budget these sizes
        # exceed would be exceeded by decompressing too (either way the
        # image is deferred, not refused).
        declared = sum(layer.size for i, layer in enumerate(resolved.layers) if i not in known)
        if declared > remaining:
            raise ScanBudgetExceeded(
                f"the new layers declare {declared} bytes, over the read budget of {remaining}",
                detail={"limit": "budget", "max": remaining},
            )
    for index, layer in enumerate(resolved.layers):
        # Fetched even when its scan is known: a blob gone from the registry
        # (or the cache) still fails issuance, as for a first request.
        path = ctx.registry.fetch_blob(pinned, layer.digest, expected_size=layer.size)
        scan: KnownScan | LayerScan | None = known.get(index)
        if scan is None:
            with path.open("rb") as blob:
                # One pass: decompress, hash (diffID) and build the manifest together.
                scan = manifest_from_layer_blob(
                    blob,
                    layer.media_type,
                    limits=ctx.manifest_limits,
                    lower=tuple(reversed(manifests)),
                    budget=remaining,
                )
            if remaining is not None:
                remaining -= scan.uncompressed_size
        if scan.diff_id != diff_ids[index]:
            raise VerificationError(
                f"layer {index} ({layer.digest}) decompresses to {scan.diff_id}, "
                f"but the image config lists diffID {diff_ids[index]}",
                detail={
                    "layer_index": index,
                    "layer_digest": layer.digest,
                    "expected": diff_ids[index],
                    "actual": scan.diff_id,
                },
            )
        manifests.append(scan.manifest)
        attestation_id = str(uuid.uuid4())
        manifest_sha256 = scan.manifest.sha256
        statement = build_layer_statement(
            image=image,
            layer_index=index,
            layer_digest=layer.digest,
            layer_media_type=layer.media_type,
            diff_id=scan.diff_id,
            chain_id=chains[index],
            history_entry=history[index],
            parent=None
            if parent is None
            else ParentRef(
                chain_id=parent.chain_id,
                envelope_sha256=parent.envelope_sha256,
                uri=f"/v1/attestations/{parent.id}/envelope",
            ),
            manifest_ref=ManifestRef(
                sha256=manifest_sha256,
                tree_digest=scan.manifest.tree_digest,
                uri=f"/v1/manifests/{manifest_sha256}",
            ),
            policy_id=str(decision.policy_id),
            policy_version=str(decision.policy_version),
            builder_id=ctx.builder_id,
            invocation_id=invocation_id,
            started_on=started,
            finished_on=now(),
        )
        signed = ctx.signer.sign(statement_bytes(statement))
        # These exact bytes are stored, served and chained; never re-serialized.
        envelope_bytes = signed.envelope
        who = signed.identity
        item = NewAttestation(
            id=attestation_id,
            layer_index=index,
            layer_digest=layer.digest,
            layer_media_type=layer.media_type,
            diff_id=scan.diff_id,
            chain_id=chains[index],
            parent_id=None if parent is None else parent.id,
            envelope=envelope_bytes,
            envelope_sha256=sha256_hex(envelope_bytes),
            keyid=ctx.signer.keyid,
            policy_id=str(decision.policy_id),
            policy_version=str(decision.policy_version),
            manifest_sha256=manifest_sha256,
            tree_digest=scan.manifest.tree_digest,
            invocation_id=invocation_id,
            bundle=signed.bundle,
            signer_identity=None if who is None else who.identity,
            signer_issuer=None if who is None else who.issuer,
        )
        items.append(item)
        parent = item
    return SignedLayers(items=tuple(items), manifests=tuple(manifests))
