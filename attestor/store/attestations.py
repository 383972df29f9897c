# SPDX-License-Identifier: Apache-2.0
"""Attestation rows: one signed envelope per layer, image, key and policy version.

The envelope bytes are stored exactly as signed and served verbatim. Listing
uses keyset pagination on ``(created_at, id)`` with an opaque cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session

from attestor.dsse import parse_envelope
from attestor.errors import InvalidInput, NotFound
from attestor.manifest import LAYER_READING_VERSION
from attestor.store._cursor import check_limit, decode_time_cursor, split_page
from attestor.store.images import flush_or_conflict
from attestor.store.models import ATTESTATION_STATUSES, AttestationModel, ImageModel

__all__ = [
    "ATTESTATION_STATUSES",
    "AttestationRow",
    "NewAttestation",
    "add_attestations",
    "find_issued",
    "find_layer_scans",
    "get_attestation",
    "list_attestations",
    "revoke_by_key",
]

MAX_PAGE = 500


@dataclass(frozen=True, kw_only=True)
class NewAttestation:
    """An attestation signed but not yet stored."""

    id: str
    layer_index: int
    layer_digest: str
    layer_media_type: str
    diff_id: str
    chain_id: str
    parent_id: str | None
    envelope: bytes
    envelope_sha256: str
    keyid: str
    policy_id: str
    policy_version: str
    manifest_sha256: str
    tree_digest: str
    invocation_id: str
    #: Keyless only: the Sigstore bundle as signed (certificate + Rekor entry).
    bundle: bytes | None = None
    #: Keyless only: the certificate's SAN and OIDC issuer.
    signer_identity: str | None = None
    signer_issuer: str | None = None


@dataclass(frozen=True, kw_only=True)
class AttestationRow(NewAttestation):
    """A stored attestation with the image it belongs to."""

    image_id: str
    registry: str
    repository: str
    manifest_digest: str
    status: str
    created_at: datetime
    #: The attestation's identity (:func:`attestor.dsse.pae_sha256`).
    pae_sha256: str


def _row(m: AttestationModel, image: ImageModel) -> AttestationRow:
    return AttestationRow(
        id=m.id,
        layer_index=m.layer_index,
        layer_digest=m.layer_digest,
        layer_media_type=m.layer_media_type,
        diff_id=m.diff_id,
        chain_id=m.chain_id,
        parent_id=m.parent_id,
        envelope=bytes(m.envelope),
        envelope_sha256=m.envelope_sha256,
        keyid=m.keyid,
        policy_id=m.policy_id,
        policy_version=m.policy_version,
        manifest_sha256=m.manifest_sha256,
        tree_digest=m.tree_digest,
        invocation_id=m.invocation_id,
        bundle=bytes(m.bundle) if m.bundle is not None else None,
        signer_identity=m.signer_identity,
        signer_issuer=m.signer_issuer,
        image_id=m.image_id,
        registry=image.registry_host,
        repository=image.repository,
        manifest_digest=image.manifest_digest,
        status=m.status,
        created_at=m.created_at,
        pae_sha256=m.pae_sha256,
    )


def _joined() -> Select[AttestationModel, ImageModel]:
    return select(AttestationModel, ImageModel).join(
        ImageModel, AttestationModel.image_id == ImageModel.id
    )


def add_attestations(
    session: Session, *, image_id: str, items: Sequence[NewAttestation], now: datetime
) -> None:
    """Insert one image's attestations (status ``valid``) in the caller's transaction.

    The identity column ``pae_sha256`` is computed here from the envelope
    bytes, so it can never disagree with what is stored.

    Raises:
        Conflict: an attestation for the same (image, layer, key, policy
            version) exists, e.g. inserted by a concurrent request; the
            transaction must be rolled back.
        InvalidInput: an envelope is not a DSSE envelope.
    """
    # One flush: rows are inserted in the order added (no relationship() reorders
    # them), parents first, and both databases check the parent_id foreign key
    # at the end of the statement.
    session.add_all(
        AttestationModel(
            **{k: getattr(item, k) for k in NewAttestation.__dataclass_fields__},
            pae_sha256=parse_envelope(item.envelope).pae_sha256(),
            layer_reading=LAYER_READING_VERSION,
            image_id=image_id,
            status="valid",
            created_at=now,
        )
        for item in items
    )
    flush_or_conflict(session, f"attestations of image {image_id}")


def find_issued(
    session: Session, *, image_id: str, keyid: str, policy_id: str, policy_version: str
) -> list[AttestationRow]:
    """Attestations of an image under one key and policy version, by layer index."""
    query = (
        _joined()
        .where(
            AttestationModel.image_id == image_id,
            AttestationModel.keyid == keyid,
            AttestationModel.policy_id == policy_id,
            AttestationModel.policy_version == policy_version,
        )
        .order_by(AttestationModel.layer_index)
    )
    return [_row(m, i) for m, i in session.execute(query)]


def find_layer_scans(
    session: Session, layer_digests: Sequence[str]
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """Layers attested before: ``(digest, media type, chainID) -> (diffID, manifest sha256)``.

    Any attestation will do, whatever its key, policy or status: the diffID and
    file manifest depend only on the blob and on the layers below it, and on
    how the tar was read, so only rows of the current
    :data:`~attestor.manifest.LAYER_READING_VERSION` count.
    """
    query = (
        select(
            AttestationModel.layer_digest,
            AttestationModel.layer_media_type,
            AttestationModel.chain_id,
            AttestationModel.diff_id,
            AttestationModel.manifest_sha256,
        )
        .where(
            AttestationModel.layer_digest.in_(sorted(set(layer_digests))),
            AttestationModel.layer_reading == LAYER_READING_VERSION,
        )
        .distinct()
    )
    return {(d, m, c): (diff, manifest) for d, m, c, diff, manifest in session.execute(query)}


def get_attestation(session: Session, attestation_id: str) -> AttestationRow:
    """One attestation.

    Raises:
        NotFound: no attestation has this id.
    """
    found = session.execute(_joined().where(AttestationModel.id == attestation_id)).first()
    if found is None:
        raise NotFound(f"no attestation with id {attestation_id[:64]!r}")
    return _row(found[0], found[1])


def list_attestations(
    session: Session,
    *,
    image_digest: str | None = None,
    layer_digest: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[AttestationRow], str | None]:
    """A page of attestations, oldest first, and the cursor of the next page.

    Raises:
        InvalidInput: an unknown status, a limit outside 1..500 or a foreign cursor.
    """
    if status is not None and status not in ATTESTATION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ATTESTATION_STATUSES)}")
    check_limit(limit, MAX_PAGE)
    query = _joined()
    if image_digest is not None:
        query = query.where(ImageModel.manifest_digest == image_digest)
    if layer_digest is not None:
        query = query.where(AttestationModel.layer_digest == layer_digest)
    if status is not None:
        query = query.where(AttestationModel.status == status)
    if cursor is not None:
        # Cursors issued before the shared helper are the same array; they still decode.
        after, after_id = decode_time_cursor(cursor)
        query = query.where(
            or_(
                AttestationModel.created_at > after,
                and_(AttestationModel.created_at == after, AttestationModel.id > after_id),
            )
        )
    query = query.order_by(AttestationModel.created_at, AttestationModel.id).limit(limit + 1)
    rows = [_row(m, i) for m, i in session.execute(query)]
    return split_page(rows, limit, lambda r: (r.created_at.isoformat(), r.id))


def revoke_by_key(session: Session, keyid: str) -> int:
    """Mark every attestation signed by ``keyid`` revoked; returns how many changed."""
    result = session.execute(
        update(AttestationModel)
        .where(AttestationModel.keyid == keyid, AttestationModel.status != "revoked")
        .values(status="revoked")
    )
    return int(getattr(result, "rowcount", 0) or 0)
