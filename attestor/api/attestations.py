# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/attestations``: issue layer attestations and serve envelopes and bundles."""

from __future__ import annotations

import logging
import threading
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, jsonify

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.errors import InvalidInput, Unavailable
from attestor.jobqueue import submit as submit_job
from attestor.jobs.issuance import ISSUE_KIND
from attestor.services.context import IssuanceAdapters, build_context
from attestor.services.issuance import (
    Deferred,
    IssueRequest,
    attestation_document,
    bundle_json,
    issue_image,
    result_document,
)
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE
from attestor.store import attestations as attestation_store
from attestor.store.attestations import AttestationRow

__all__ = ["blp", "issuance_adapters"]

log = logging.getLogger(__name__)

blp = Blueprint(
    "attestations", __name__, url_prefix="/v1/attestations", description="Layer attestations."
)

_ADAPTERS_KEY = "attestor.issuance"
_ADAPTERS_LOCK = threading.Lock()
_ROLES = ("admin", "pipeline", "agent")
_DIGEST = ma.validate.Regexp(r"^sha256:[0-9a-f]{64}$", error="must be sha256:<64 hex>")


def issuance_adapters(app: Flask) -> IssuanceAdapters:
    """The app's registry client, blob cache and policies, built on first use.

    They are the process's issue state, which the in-process runner's
    ``issue`` jobs share, so one process builds one registry client.

    Raises:
        ConfigError: the registry credentials file or keyless signing is unusable.
    """
    adapters = app.extensions.get(_ADAPTERS_KEY)
    if adapters is None:
        with _ADAPTERS_LOCK:
            adapters = app.extensions.get(_ADAPTERS_KEY)
            if adapters is None:
                adapters = app_state(app).issue_state.get().adapters
                app.extensions[_ADAPTERS_KEY] = adapters
    assert isinstance(adapters, IssuanceAdapters)  # noqa: S101 - set only here
    return adapters


class _MetricsRecorder:
    def __init__(self, app: Flask) -> None:
        self._counter = app_state(app).metrics.attestations_issued

    def attestations_issued(self, count: int) -> None:
        self._counter.inc(count)


class IssueSchema(ma.Schema):
    image = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=1024),
        metadata={"example": "127.0.0.1:5000/app@sha256:<hex>"},
    )
    attach = ma.fields.Boolean(load_default=False)


class LayerSchema(ma.Schema):
    index = ma.fields.Integer(required=True)
    digest = ma.fields.String(required=True)
    diff_id = ma.fields.String(required=True)


class ManifestLinkSchema(ma.Schema):
    sha256 = ma.fields.String(required=True)
    tree_digest = ma.fields.String(required=True)
    url = ma.fields.String(required=True)


class ImageNameSchema(ma.Schema):
    registry = ma.fields.String(required=True)
    repository = ma.fields.String(required=True)
    digest = ma.fields.String(required=True)


class AttestationSummarySchema(ma.Schema):
    id = ma.fields.String(required=True)
    image = ma.fields.Nested(ImageNameSchema, required=True)
    keyid = ma.fields.String(
        required=True,
        metadata={"description": "The signing key, or keyless:<sha256> for a keyless identity."},
    )
    layer = ma.fields.Nested(LayerSchema, required=True)
    status = ma.fields.String(required=True)
    envelope_url = ma.fields.String(required=True)
    bundle_url = ma.fields.String(required=True)
    manifest = ma.fields.Nested(ManifestLinkSchema, required=True)


class ImageSchema(ma.Schema):
    reference = ma.fields.String(required=True)
    digest = ma.fields.String(required=True)
    tag = ma.fields.String()


class AttachedSchema(ma.Schema):
    cosign_tag = ma.fields.String(required=True)
    cosign_manifest_digest = ma.fields.String(required=True)
    referrers = ma.fields.List(ma.fields.String(), required=True)
    referrers_tag = ma.fields.String(allow_none=True, required=True)


class IssuedSchema(ma.Schema):
    image = ma.fields.Nested(ImageSchema, required=True)
    attestations = ma.fields.List(ma.fields.Nested(AttestationSummarySchema), required=True)
    attached = ma.fields.Nested(
        AttachedSchema, metadata={"description": "Present when attach was asked for."}
    )


class JobLinkSchema(ma.Schema):
    id = ma.fields.String(required=True)
    url = ma.fields.String(required=True)


class JobAcceptedSchema(ma.Schema):
    job = ma.fields.Nested(JobLinkSchema, required=True)


class PolicyRefSchema(ma.Schema):
    id = ma.fields.String(required=True)
    version = ma.fields.String(required=True)


class SignerSchema(ma.Schema):
    identity = ma.fields.String(required=True, metadata={"description": "Certificate SAN."})
    issuer = ma.fields.String(required=True, metadata={"description": "OIDC issuer."})


class AttestationSchema(AttestationSummarySchema):
    signer = ma.fields.Nested(
        SignerSchema,
        allow_none=True,
        required=True,
        metadata={"description": "Keyless only: who the Fulcio certificate names."},
    )
    chain_id = ma.fields.String(required=True)
    parent_id = ma.fields.String(allow_none=True, required=True)
    envelope_sha256 = ma.fields.String(
        required=True, metadata={"description": "sha256 hex of the stored envelope bytes."}
    )
    pae_sha256 = ma.fields.String(
        required=True,
        metadata={
            "description": "The attestation's identity: sha256 hex of the DSSE PAE its "
            "signatures sign (unchanged by keyids, signatures or JSON layout)."
        },
    )
    policy = ma.fields.Nested(PolicyRefSchema, required=True)
    created = ma.fields.DateTime(required=True)


class ListQuerySchema(ma.Schema):
    image_digest = ma.fields.String(validate=_DIGEST)
    layer_digest = ma.fields.String(validate=_DIGEST)
    status = ma.fields.String(validate=ma.validate.OneOf(attestation_store.ATTESTATION_STATUSES))
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=attestation_store.MAX_PAGE)
    )
    cursor = ma.fields.String(validate=ma.validate.Length(max=512))


class AttestationPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AttestationSchema), required=True)
    next = ma.fields.String(allow_none=True, required=True)


def _detail(row: AttestationRow) -> dict[str, Any]:
    return {
        **attestation_document(row),
        "signer": None
        if row.signer_identity is None
        else {"identity": row.signer_identity, "issuer": row.signer_issuer or ""},
        "chain_id": row.chain_id,
        "parent_id": row.parent_id,
        "envelope_sha256": row.envelope_sha256,
        "pae_sha256": row.pae_sha256,
        "policy": {"id": row.policy_id, "version": row.policy_version},
        "created": row.created_at,
    }


@blp.route("", methods=["POST"])
@require_roles(*_ROLES)
@blp.arguments(IssueSchema)
@blp.response(201, IssuedSchema, description="Signed now.")
@blp.alt_response(200, schema=IssuedSchema, description="They existed: same key and policy.")
@blp.alt_response(202, schema=JobAcceptedSchema, description="Large image: poll the job.")
def issue(body: dict[str, Any]) -> Any:
    """Attest every layer of an image the server fetches itself; idempotent."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = app_state(app)
    ctx = build_context(
        state.settings,
        state.session_factory,
        issuance_adapters(app),
        recorder=_MetricsRecorder(app),
    )
    request = IssueRequest(image=body["image"], attach=body["attach"])
    # Never more than the inline budget of new layer bytes in a request thread.
    inline_scan_bytes = state.settings.issue_inline_scan_bytes
    result = issue_image(
        ctx,
        request,
        now=state.clock,
        defer_above_bytes=state.settings.issue_defer_above_bytes,
        inline_scan_bytes=inline_scan_bytes,
    )
    if isinstance(result, Deferred):
        payload = {"image": request.image, "attach": request.attach}
        try:
            # The row is marked failed if the queue cannot take the job.
            job = submit_job(
                state.session_factory,
                state.runner,
                kind=ISSUE_KIND,
                payload=payload,
                now=state.clock(),
                created_by=current_principal().token_id,
            )
        except Unavailable:
            # Issuance keeps working without the queue for what fits the inline
            # budget (the download threshold is waived, not the scan budget);
            # a larger image waits for the queue rather than hold this thread.
            log.warning("job queue unreachable; issuing %s in the request", request.image)
            result = issue_image(ctx, request, now=state.clock, inline_scan_bytes=inline_scan_bytes)
            if isinstance(result, Deferred):
                raise
        else:
            response = jsonify({"job": {"id": job.id, "url": f"/v1/jobs/{job.id}"}})
            response.status_code = 202
            response.headers["Location"] = f"/v1/jobs/{job.id}"
            return response
    return result_document(result), 201 if result.created else 200


@blp.route("", methods=["GET"])
@require_roles(*_ROLES)
@blp.arguments(ListQuerySchema, location="query")
@blp.response(200, AttestationPageSchema)
def list_attestations(query: dict[str, Any]) -> dict[str, Any]:
    """Attestations, oldest first; pass ``next`` back as ``cursor`` for the next page."""
    with app_state().session_factory() as session:
        rows, cursor = attestation_store.list_attestations(
            session,
            image_digest=query.get("image_digest"),
            layer_digest=query.get("layer_digest"),
            status=query.get("status"),
            limit=query["limit"],
            cursor=query.get("cursor"),
        )
    return {"items": [_detail(r) for r in rows], "next": cursor}


def _get(attestation_id: str) -> AttestationRow:
    if len(attestation_id) > 64:
        raise InvalidInput("attestation id too long")
    with app_state().session_factory() as session:
        return attestation_store.get_attestation(session, attestation_id)


@blp.route("/<string:attestation_id>", methods=["GET"])
@require_roles(*_ROLES)
@blp.response(200, AttestationSchema)
def get_attestation(attestation_id: str) -> dict[str, Any]:
    """Metadata and status of one attestation."""
    return _detail(_get(attestation_id))


@blp.route("/<string:attestation_id>/envelope", methods=["GET"])
@require_roles(*_ROLES)
@blp.doc(responses={"200": {"description": "The DSSE envelope, byte for byte as signed."}})
def get_envelope(attestation_id: str) -> Response:
    """The DSSE envelope as cosign writes and reads it (``--signature``)."""
    row = _get(attestation_id)
    return Response(row.envelope, mimetype="application/json")


@blp.route("/<string:attestation_id>/bundle", methods=["GET"])
@require_roles(*_ROLES)
@blp.doc(
    responses={
        "200": {
            "description": "A Sigstore bundle v0.3: public key hint, or keyless "
            "(Fulcio certificate and Rekor entry)."
        }
    }
)
def get_bundle(attestation_id: str) -> Response:
    """The Sigstore bundle v0.3: key-signed, ``publicKey.hint`` is the keyid; keyless,
    the bundle as signed, with its certificate and transparency log entry."""
    return Response(bundle_json(_get(attestation_id)), mimetype=BUNDLE_V03_MEDIA_TYPE)
