# SPDX-License-Identifier: Apache-2.0
"""Issue one signed attestation per layer of a registry image.

Order matters for safety:

1. parse the reference, then apply the policy **before any network I/O**: we
   contact only registries a policy admits;
2. resolve the image (tag -> digest; both recorded) and return the existing
   attestations when this image was already attested under the same key and
   policy version (idempotence);
3. per layer, bottom first (:mod:`attestor.services._layer_signing`): fetch
   the verified blob (cached by digest),
   decompress it once while computing the diffID and the file manifest, check
   the diffID against ``rootfs.diff_ids``, build, schema-check and sign the
   statement, linking it to the layer below (the attestation chain);
4. store image, manifests and attestations in one transaction: nothing is
   half-stored, and a concurrent identical request loses on the unique
   constraint and returns the winner's rows.

The caller's layer metadata is never trusted: only the reference is input.

In a request thread (the API passes ``inline_scan_bytes``) the layers this
server never scanned may decompress to only a few MiB, counted on the bytes
actually read; anything more stops at once and becomes a job, whose runner
has a fixed number of threads. The sizes in the image manifest cannot decide
this: the attacker writes them, and a 64 KiB zstd blob can hold gigabytes.
A small budget rather than always deferring: a small image (the usual case
for a pipeline's own layers) is answered 201 in one round trip, and the work
a request may do is bounded as tightly as with a job (the budget, plus the
blobs it fetches, held to their declared sizes by ``defer_above_bytes``);
only what would pass the budget pays the job's queueing and polling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import Conflict
from attestor.manifest import ManifestLimits, ScanBudgetExceeded
from attestor.policy import Decision, PolicySet, require_admitted
from attestor.registry import BlobCache, RegistryClient, ResolvedImage, parse_reference
from attestor.registry.reference import ImageReference
from attestor.services import revocation as revocation_service
from attestor.services._layer_signing import SignedLayers, sign_layers
from attestor.services.attach import AttachItem, AttachResult, attach_attestations

# Re-exported: the API and the job import the documents from here.
from attestor.services.documents import attestation_document, bundle_json, result_document
from attestor.services.signers import KEYLESS_KEYID_PREFIX, SignerIdentity, StatementSigner
from attestor.statement import PREDICATE_TYPE
from attestor.store import attestations as attestation_store
from attestor.store import images as image_store
from attestor.store import manifests as manifest_store
from attestor.store import signing_keys as key_store
from attestor.store.attestations import AttestationRow

__all__ = [
    "Deferred",
    "IssuanceContext",
    "IssuanceRecorder",
    "IssueRequest",
    "IssueResult",
    "attestation_document",
    "bundle_json",
    "issue_image",
    "result_document",
]

#: A concurrent writer may win the race a couple of times (image row, then attestations).
_STORE_ATTEMPTS: Final = 3


class IssuanceRecorder(Protocol):
    """Receives counts for metrics (the API passes an adapter to its Prometheus counters)."""

    def attestations_issued(self, count: int) -> None:
        """``count`` new attestations were signed and stored."""


@dataclass(frozen=True, kw_only=True)
class IssuanceContext:
    """Everything issuance uses, injected: registry, policies, store, signer."""

    registry: RegistryClient
    cache: BlobCache
    policies: PolicySet
    session_factory: sessionmaker[Session]
    #: The active local key or a keyless identity; ``signer.keyid`` keys idempotence.
    signer: StatementSigner
    builder_id: str
    manifest_limits: ManifestLimits = ManifestLimits()  # noqa: B008 - a frozen value
    recorder: IssuanceRecorder | None = None
    #: Attach to the registry even when the request does not ask (ATTESTOR_ATTACH_ATTESTATIONS).
    attach_by_default: bool = False


@dataclass(frozen=True, kw_only=True)
class IssueRequest:
    """What a caller may say: the image reference, nothing about its layers."""

    image: str
    attach: bool = False


@dataclass(frozen=True, kw_only=True)
class IssueResult:
    """The attestations of one image, bottom layer first."""

    #: True when this call signed and stored them; False when they existed.
    created: bool
    #: The reference as the caller gave it.
    reference: str
    name: str
    digest: str
    tag: str | None
    attestations: tuple[AttestationRow, ...]
    #: Where they were pushed in the image's repository, when attaching was asked for.
    attached: AttachResult | None = None


@dataclass(frozen=True, kw_only=True)
class Deferred:
    """The image needs more than the inline budget; run it as a job."""

    reference: str
    #: Declared bytes of the layer blobs not yet cached.
    pending_bytes: int


def issue_image(
    ctx: IssuanceContext,
    request: IssueRequest,
    *,
    now: Callable[[], datetime],
    defer_above_bytes: int | None = None,
    inline_scan_bytes: int | None = None,
) -> IssueResult | Deferred:
    """Attest every layer of ``request.image``, or return the existing attestations.

    Args:
        ctx: the injected adapters and the active signer.
        request: the image reference (tag and/or digest).
        now: the clock (start, per-layer finish and storage times).
        defer_above_bytes: when set and the layer blobs not yet cached exceed
            it, return :class:`Deferred` instead of downloading.
        inline_scan_bytes: when set, the layers never scanned before may
            decompress to at most this many bytes (counted as they are read,
            not as the manifest declares); past it, stop and return
            :class:`Deferred`. Layers already scanned, by (blob digest,
            chainID), are reused and not counted.

    Raises:
        InvalidInput: an unparseable reference or an artifact that is not an image.
        PolicyDenied: no policy admits the registry/repository (nothing was fetched).
        TooLarge: a manifest, config or blob over its cap.
        NotFound: the registry has no such manifest.
        UpstreamError: unreachable registry, timeout, missing blob, bytes that do
            not match their digest.
        VerificationError: a layer's uncompressed digest differs from its diffID.
        Conflict: storage kept conflicting with concurrent writers, or an
            attachment tag holds an unrelated document.

    With ``request.attach`` (or ``ctx.attach_by_default``) the attestations,
    new or existing, are then pushed to the image's repository; a registry
    error there is raised after they were stored.
    """
    ref = parse_reference(request.image)
    # Policy before any network I/O: an unlisted registry is never contacted.
    decision = require_admitted(ctx.policies, ref)
    attach = request.attach or ctx.attach_by_default
    if ref.digest is not None and not attach:
        existing = _existing(ctx, ref, ref.digest, decision)
        if existing:
            return _result(request, ref, existing, created=False)
    resolved = ctx.registry.resolve(ref)
    rows = _existing(ctx, ref, resolved.manifest_digest, decision)
    created = False
    if not rows:
        pending = sum(
            layer.size
            for layer in resolved.layers
            if ctx.cache.path_for(layer.digest, expected_size=layer.size) is None
        )
        if defer_above_bytes is not None and pending > defer_above_bytes:
            return Deferred(reference=request.image, pending_bytes=pending)
        try:
            signed = sign_layers(ctx, resolved, decision, now=now, scan_budget=inline_scan_bytes)
        except ScanBudgetExceeded:
            # Nothing was stored; the fetched blobs stay cached for the job.
            return Deferred(reference=request.image, pending_bytes=pending)
        rows, created = _store(ctx, resolved, decision, signed, now=now)
        if created and ctx.recorder is not None:
            ctx.recorder.attestations_issued(len(rows))
    # Attach after the commit: the registry is not transactional, and attaching
    # is idempotent, so a failed attach is repaired by asking again.
    attached = _attach(ctx, resolved, rows, now=now) if attach else None
    return _result(request, ref, rows, created=created, attached=attached)


def _attach(
    ctx: IssuanceContext,
    resolved: ResolvedImage,
    rows: Sequence[AttestationRow],
    *,
    now: Callable[[], datetime],
) -> AttachResult:
    items = [
        AttachItem(
            envelope_json=row.envelope,
            bundle_json=bundle_json(row),
            predicate_type=PREDICATE_TYPE,
        )
        for row in rows
    ]
    return attach_attestations(
        ctx.registry,
        resolved.pinned,
        resolved.manifest_digest,
        resolved.media_type,
        len(resolved.manifest),
        items,
        now=now(),
    )


def _existing(
    ctx: IssuanceContext, ref: ImageReference, digest: str, decision: Decision
) -> list[AttestationRow]:
    with ctx.session_factory() as session:
        image = image_store.find_image(
            session, registry=ref.registry, repository=ref.repository, manifest_digest=digest
        )
        if image is None:
            return []
        # Rows are stored all-or-nothing, so any row means the whole set exists.
        return attestation_store.find_issued(
            session,
            image_id=image.id,
            keyid=ctx.signer.keyid,
            policy_id=str(decision.policy_id),
            policy_version=str(decision.policy_version),
        )


def _store(
    ctx: IssuanceContext,
    resolved: ResolvedImage,
    decision: Decision,
    signed: SignedLayers,
    *,
    now: Callable[[], datetime],
) -> tuple[list[AttestationRow], bool]:
    ref = resolved.reference
    last: Conflict | None = None
    for _ in range(_STORE_ATTEMPTS):
        try:
            with ctx.session_factory.begin() as session:
                return _store_once(
                    session, resolved, decision, signed, keyid=ctx.signer.keyid, now=now()
                )
        except Conflict as e:
            # A concurrent identical request committed first; the next attempt
            # reads its rows (or retries the insert if it stored something else).
            last = e
    raise Conflict(
        f"could not store the attestations of {ref.name}@{resolved.manifest_digest}: "
        f"{last.message if last else 'conflict'}"
    )


def _store_once(
    session: Session,
    resolved: ResolvedImage,
    decision: Decision,
    signed: SignedLayers,
    *,
    keyid: str,
    now: datetime,
) -> tuple[list[AttestationRow], bool]:
    ref = resolved.reference
    image = image_store.get_or_add_image(
        session,
        registry=ref.registry,
        repository=ref.repository,
        tag=ref.tag,
        manifest_digest=resolved.manifest_digest,
        media_type=resolved.media_type,
        requested_reference=str(ref),
        now=now,
    )
    key = {
        "image_id": image.id,
        "keyid": keyid,
        "policy_id": str(decision.policy_id),
        "policy_version": str(decision.policy_version),
    }
    existing = attestation_store.find_issued(session, **key)
    if existing:
        return existing, False
    if keyid.startswith(KEYLESS_KEYID_PREFIX):
        first = signed.items[0]
        who = SignerIdentity(first.signer_identity or "", first.signer_issuer or "")
        identity_row = key_store.ensure_keyless_row(
            session, keyid, signer_uri=f"keyless:{who.issuer} {who.identity}", now=now
        )
        if identity_row.status == "revoked":
            # Revoked between build_context's check and now: store nothing.
            raise Conflict(f"keyless identity {keyid} was revoked")
    stored = manifest_store.get_manifests(session, [m.sha256 for m in signed.manifests])
    for manifest in signed.manifests:
        if manifest.sha256 in stored:
            continue  # content-addressed: already there (a reused or shared layer)
        manifest_store.put_manifest(
            session,
            sha256=manifest.sha256,
            tree_digest=manifest.tree_digest,
            body=manifest.canonical_bytes(),
            entry_count=len(manifest.entries),
            now=now,
        )
    attestation_store.add_attestations(session, image_id=image.id, items=signed.items, now=now)
    # A revocation that already covers what we just signed (image, subject,
    # key, policy version, time window) applies at once, in this transaction.
    revocation_service.apply_revocations(session, image_id=image.id)
    return attestation_store.find_issued(session, **key), True


def _result(
    request: IssueRequest,
    ref: ImageReference,
    rows: Sequence[AttestationRow],
    *,
    created: bool,
    attached: AttachResult | None = None,
) -> IssueResult:
    return IssueResult(
        created=created,
        reference=request.image,
        name=ref.name,
        digest=rows[0].manifest_digest,
        tag=ref.tag,
        attestations=tuple(rows),
        attached=attached,
    )
