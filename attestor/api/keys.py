# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/keys``: public signing keys for everyone, key management for admins.

No response ever carries a private key or a signer URI.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response
from sqlalchemy.orm import Session

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.services import audit as audit_service
from attestor.services import keys as key_service
from attestor.services import revocation as revocation_service
from attestor.signing.keys import ALGORITHMS

__all__ = ["blp"]

blp = Blueprint("keys", __name__, url_prefix="/v1/keys", description="Signing keys.")

_ALGORITHM = ma.validate.OneOf(sorted(ALGORITHMS))


class KeySchema(ma.Schema):
    keyid = ma.fields.String(required=True)
    algorithm = ma.fields.String(required=True)
    public_key_pem = ma.fields.String(
        required=True, metadata={"description": "SubjectPublicKeyInfo PEM (cosign.pub)."}
    )
    status = ma.fields.String(required=True, metadata={"enum": ["active", "retired", "revoked"]})
    created = ma.fields.DateTime(required=True)
    retired = ma.fields.DateTime(allow_none=True)
    revoked = ma.fields.DateTime(allow_none=True)
    revocation_reason = ma.fields.String(allow_none=True)


class KeyListSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Nested(KeySchema), required=True)


class KeyCreateSchema(ma.Schema):
    algorithm = ma.fields.String(load_default=None, validate=_ALGORITHM)
    private_key_pem = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=16 * 1024),
        load_only=True,
        metadata={"description": "Import this PEM private key instead of generating one."},
    )
    password = ma.fields.String(load_default=None, load_only=True)
    signer_uri = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=2048),
        load_only=True,
        metadata={
            "description": "Register the key this signer URI names, without copying it: "
            "file:///absolute/key.pem (an unencrypted PEM private key at that path on "
            "every replica) or a securesystemslib KMS/HSM URI (with public_key_pem). "
            "It must load and sign now."
        },
    )
    public_key_pem = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=16 * 1024),
        load_only=True,
        metadata={"description": "SPKI PEM of a non-file signer_uri (optional for file:)."},
    )
    activate = ma.fields.Boolean(load_default=False)

    @ma.validates_schema
    def _one_source(self, data: dict[str, Any], **_: Any) -> None:
        given = [
            k for k in ("algorithm", "private_key_pem", "signer_uri") if data.get(k) is not None
        ]
        if len(given) != 1:
            raise ma.ValidationError("give exactly one of algorithm, private_key_pem or signer_uri")
        if data.get("public_key_pem") is not None and given != ["signer_uri"]:
            raise ma.ValidationError("public_key_pem goes only with signer_uri")


class RotateSchema(ma.Schema):
    algorithm = ma.fields.String(load_default="ecdsa-p256", validate=_ALGORITHM)


class RevokeSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=1000))


def _audit(session: Session, action: str, key: key_service.PublicKey, **extra: object) -> None:
    # In the view's transaction: the key change and its audit row commit together.
    audit_service.record(
        session,
        actor=f"token:{current_principal().token_id}",
        action=action,
        target=f"key:{key.keyid}",
        change={"algorithm": key.algorithm, "status": key.status, **extra},
        now=app_state().clock(),
    )


@blp.route("", methods=["GET"])
@require_roles("admin", "pipeline", "agent")
@blp.response(200, KeyListSchema)
def list_keys() -> dict[str, Any]:
    """Every key with its public PEM and status (agents pin these)."""
    with app_state().session_factory() as session:
        return {"keys": key_service.list_public_keys(session)}


@blp.route("/set", methods=["GET"])
@require_roles("admin", "pipeline", "agent")
@blp.doc(
    responses={
        "200": {
            "description": "A DSSE envelope (payloadType "
            "application/vnd.attestor.key-set.v1+json) whose payload is the versioned "
            "key set of schemas/key-set.schema.json, signed by every key that is not "
            "revoked (docs/key-set.md).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "409": {"description": "No key that is not revoked can sign the set."},
    },
)
def key_set() -> Response:
    """The signed key set agents pin and follow (a rotation is signed by the old key)."""
    with app_state().session_factory() as session:
        body = key_service.signed_key_set(session)
    response = Response(body, status=200, mimetype="application/json")
    # A cached set would hold a rotation back from the agents.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.route("", methods=["POST"])
@require_roles("admin")
@blp.arguments(KeyCreateSchema)
@blp.response(201, KeySchema)
def create_key(body: dict[str, Any]) -> key_service.PublicKey:
    """Generate, import or register (by signer URI) a key; it is retired (verify-only)
    unless ``activate``. With ATTESTOR_KEY_FILES=external only ``signer_uri`` is
    accepted (409 otherwise): generated or imported files would exist on one replica."""
    state = app_state()
    with state.session_factory.begin() as session:
        key = key_service.add_key(
            session,
            keys_dir=state.settings.keys_dir,
            algorithm=body["algorithm"],
            private_key_pem=body["private_key_pem"],
            password=body["password"],
            signer_uri=body["signer_uri"],
            public_key_pem=body["public_key_pem"],
            activate=body["activate"],
            key_files=state.settings.key_files,
            replica_dir=state.settings.data_dir,
            now=state.clock(),
        )
        given = "signer_uri" if body["signer_uri"] else "private_key_pem"
        source = given if body["algorithm"] is None else "generated"
        _audit(session, "key.create", key, source=source, activate=body["activate"])
        return key


@blp.route("/rotate", methods=["POST"])
@require_roles("admin")
@blp.arguments(RotateSchema, required=False)
@blp.response(201, KeySchema)
def rotate_key(body: dict[str, Any]) -> key_service.PublicKey:
    """Generate a key and make it active; the previous key stays verifiable (retired).
    409 with ATTESTOR_KEY_FILES=external: register the new key by ``signer_uri``
    with ``activate`` instead."""
    state = app_state()
    with state.session_factory.begin() as session:
        key = key_service.rotate_key(
            session,
            keys_dir=state.settings.keys_dir,
            algorithm=body["algorithm"],
            key_files=state.settings.key_files,
            now=state.clock(),
        )
        _audit(session, "key.rotate", key)
        return key


@blp.route("/<string:keyid>/revoke", methods=["POST"])
@require_roles("admin")
@blp.arguments(RevokeSchema)
@blp.response(200, KeySchema)
def revoke_key(body: dict[str, Any], keyid: str) -> key_service.PublicKey:
    """Revoke a key; its attestations become ``revoked``. Revoking the active key
    stops issuance until a key is rotated in."""
    state = app_state()
    with state.session_factory.begin() as session:
        key = key_service.revoke_key(session, keyid, reason=body["reason"], now=state.clock())
        # Agents learn of revoked keys only through the revocation feed.
        revocation_service.on_key_revoked(
            session,
            keyid,
            reason=body["reason"],
            actor=f"token:{current_principal().token_id}",
            now=state.clock(),
        )
        # Last: the audit lock is always taken after the feed's, never before it
        # (POST /v1/revocations takes them in that order; the other would deadlock).
        _audit(session, "key.revoke", key, reason=body["reason"])
        return key
