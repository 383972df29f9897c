# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/policies``: central policy management for admins (immutable versions).

A document is sent as text (YAML or JSON) in ``{"document": ...}`` and stored
byte for byte. An invalid document is refused with 422 and one
``{pointer, message}`` per error; nothing is stored.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import marshmallow as ma
from flask import current_app

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.attestations import issuance_adapters
from attestor.api.auth import current_principal, require_roles
from attestor.errors import Error, InvalidInput
from attestor.jobs.reverify import enqueue_policy_sweeps
from attestor.policy import evaluate
from attestor.registry import parse_reference
from attestor.services import policies as policy_service
from attestor.services.policy_db import DatabasePolicies

__all__ = ["blp"]

log = logging.getLogger(__name__)

blp = Blueprint("policies", __name__, url_prefix="/v1/policies", description="Policy management.")

_MAX_VERSION = 2**31 - 1
_NUMBER = re.compile(r"[0-9]{1,10}")


class PolicyDocumentSchema(ma.Schema):
    document = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=policy_service.MAX_DOCUMENT_BYTES),
        metadata={"description": "The policy document, YAML or JSON text, stored as given."},
    )

    @ma.validates("document")
    def _valid(self, value: str, **_: Any) -> None:
        try:
            policy_service.validate_document(value.encode(), source="document")
        except InvalidInput as e:
            raise ma.ValidationError(policy_service.document_errors(e)) from e


class PolicySchema(ma.Schema):
    id = ma.fields.String(required=True)
    version = ma.fields.Integer(
        required=True, metadata={"description": "Stored version number (1, 2, ...)."}
    )
    label = ma.fields.String(
        required=True,
        metadata={"description": "The document's own `version`, recorded in attestations."},
    )
    sha256 = ma.fields.String(required=True, metadata={"description": "Of the document bytes."})
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)
    deleted = ma.fields.Boolean(required=True)
    created_by = ma.fields.String(required=True, metadata={"description": "Actor of the version."})
    document = ma.fields.String(required=True)


class PolicyChangeSchema(PolicySchema):
    outcome = ma.fields.String(
        required=True,
        metadata={"enum": ["created", "updated", "unchanged", "rolled-back"]},
    )


class PolicyListSchema(ma.Schema):
    policies = ma.fields.List(ma.fields.Nested(PolicySchema), required=True)


class PolicyListQuerySchema(ma.Schema):
    include_deleted = ma.fields.Boolean(load_default=False)


class VersionSchema(ma.Schema):
    policy_id = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True)
    sha256 = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    created_by = ma.fields.String(required=True)


class VersionDocumentSchema(VersionSchema):
    document = ma.fields.String(required=True)


class VersionListSchema(ma.Schema):
    versions = ma.fields.List(ma.fields.Nested(VersionSchema), required=True)


class RollbackSchema(ma.Schema):
    version = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(min=1, max=_MAX_VERSION)
    )


def _actor() -> str:
    return f"token:{current_principal().token_id}"


def _change(applied: policy_service.Applied) -> dict[str, Any]:
    return {**applied.policy.__dict__, "outcome": applied.outcome}


def _reevaluate(applied: policy_service.Applied) -> None:
    # Attestations issued under another version of a policy now in force are
    # checked against it at once, by the sweep the periodic one also runs
    # (it revokes those the new version no longer admits). The set is read
    # fresh: the process's policy source may be up to a second behind. If the
    # sweep cannot be queued, the periodic sweep covers it.
    if applied.outcome == "unchanged":
        return
    state = app_state()
    try:
        policies = DatabasePolicies(state.session_factory).current()
        enqueue_policy_sweeps(state.session_factory, state.runner, policies, now=state.clock())
    except Error as e:
        log.warning("policy re-evaluation not queued: %s", e)


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(PolicyListQuerySchema, location="query")
@blp.response(200, PolicyListSchema)
def list_policies(query: dict[str, Any]) -> dict[str, Any]:
    """Every policy with its current version and document, ordered by id."""
    with app_state().session_factory() as session:
        found = policy_service.list_policies(session, include_deleted=query["include_deleted"])
    return {"policies": found}


@blp.route("", methods=["POST"])
@require_roles("admin")
@blp.arguments(PolicyDocumentSchema)
@blp.response(201, PolicyChangeSchema)
def create_policy(body: dict[str, Any]) -> dict[str, Any]:
    """Create a policy (version 1), or bring back a deleted id as a new version.
    409 when the id exists."""
    state = app_state()
    with state.session_factory.begin() as session:
        applied = policy_service.create(
            session, body["document"].encode(), actor=_actor(), now=state.clock()
        )
    _reevaluate(applied)
    return _change(applied)


@blp.route("/<string:policy_id>", methods=["GET"])
@require_roles("admin")
@blp.response(200, PolicySchema)
def get_policy(policy_id: str) -> policy_service.PolicyView:
    """One policy with its current document."""
    with app_state().session_factory() as session:
        return policy_service.get(session, policy_id)


@blp.route("/<string:policy_id>", methods=["PUT"])
@require_roles("admin")
@blp.arguments(PolicyDocumentSchema)
@blp.response(200, PolicyChangeSchema)
def update_policy(body: dict[str, Any], policy_id: str) -> dict[str, Any]:
    """Store a new immutable version; the same bytes as the current ones change nothing.
    409 when the document's `version` was used before for other content."""
    state = app_state()
    with state.session_factory.begin() as session:
        applied = policy_service.update(
            session, policy_id, body["document"].encode(), actor=_actor(), now=state.clock()
        )
    _reevaluate(applied)
    return _change(applied)


@blp.route("/<string:policy_id>", methods=["DELETE"])
@require_roles("admin")
@blp.response(204)
def delete_policy(policy_id: str) -> None:
    """Delete (soft): the policy leaves the set in force; its versions stay."""
    state = app_state()
    with state.session_factory.begin() as session:
        policy_service.delete(session, policy_id, actor=_actor(), now=state.clock())


@blp.route("/<string:policy_id>/versions", methods=["GET"])
@require_roles("admin")
@blp.response(200, VersionListSchema)
def list_versions(policy_id: str) -> dict[str, Any]:
    """Every version, oldest first (documents at ``/versions/{version}``)."""
    with app_state().session_factory() as session:
        return {"versions": policy_service.versions(session, policy_id)}


@blp.route(
    # A string, not <int:...>: a non-number then reaches authentication and
    # answers 404 problem+json like any unknown version, not Flask's bare 404.
    "/<string:policy_id>/versions/<string:version>",
    methods=["GET"],
    parameters=[
        {
            "in": "path",
            "name": "version",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_VERSION},
        }
    ],
)
@require_roles("admin")
@blp.response(200, VersionDocumentSchema)
def get_version(policy_id: str, version: str) -> policy_service.VersionView:
    """One version with its document."""
    # 0 names no version: the service answers 404 for it.
    number = int(version) if _NUMBER.fullmatch(version) else 0
    with app_state().session_factory() as session:
        return policy_service.version(session, policy_id, number)


@blp.route("/<string:policy_id>/rollback", methods=["POST"])
@require_roles("admin")
@blp.arguments(RollbackSchema)
@blp.response(200, PolicyChangeSchema)
def rollback_policy(body: dict[str, Any], policy_id: str) -> dict[str, Any]:
    """Make a new version whose content is that of ``version`` (also undeletes)."""
    state = app_state()
    with state.session_factory.begin() as session:
        applied = policy_service.rollback(
            session, policy_id, body["version"], actor=_actor(), now=state.clock()
        )
    _reevaluate(applied)
    return _change(applied)


class EvaluateSchema(ma.Schema):
    image = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=1024),
        metadata={"example": "127.0.0.1:5000/app@sha256:<hex>"},
    )


class EvaluationSchema(ma.Schema):
    image = ma.fields.String(required=True, metadata={"description": "registry/repository"})
    allowed = ma.fields.Boolean(required=True)
    decision = ma.fields.Dict(
        required=True, metadata={"description": "schemas/policy-decision.schema.json"}
    )


@blp.route("/evaluate", methods=["POST"])
@require_roles("admin", "pipeline")
@blp.arguments(EvaluateSchema)
@blp.response(200, EvaluationSchema)
def evaluate_image_policies(body: dict[str, Any]) -> dict[str, Any]:
    """Dry run: the decision the policies in force give this image now; nothing is
    fetched, issued or stored. Rules whose evidence issuance does not gather yet
    (signatures, attestations, age, base layers) fail here as they would there."""
    ref = parse_reference(body["image"])
    decision = evaluate(issuance_adapters(current_app).current_policies(), ref)
    return {
        "image": f"{ref.registry}/{ref.repository}",
        "allowed": decision.allowed,
        "decision": decision.to_dict(),
    }
