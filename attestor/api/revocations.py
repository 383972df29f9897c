# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/revocations``: admins revoke and list; agents poll the signed feed.

Spec of the feed: ``docs/revocation-feed.md``. There is no DELETE: history is
never deleted.
"""

from __future__ import annotations

from typing import Any, Final

import marshmallow as ma
from flask import Response, request

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import current_principal, require_roles
from attestor.errors import InvalidInput
from attestor.revocation import KINDS
from attestor.revocation_feed import FeedLimits
from attestor.services import revocation as revocation_service
from attestor.store import revocations as revocation_store

__all__ = ["FEED_CACHE", "blp"]

blp = Blueprint("revocations", __name__, url_prefix="/v1/revocations", description="Revocations.")

#: Signed feed bodies per ETag, shared by this process's threads.
FEED_CACHE: Final = revocation_service.FeedCache()
_MAX_CURSOR = 2**63 - 1


class RevocationCreateSchema(ma.Schema):
    target = ma.fields.Dict(
        required=True,
        metadata={
            "description": "kind plus its members (docs/revocation-feed.md); an "
            "`attestation` is named by `attestation_id`, `envelope_sha256` and/or "
            "`pae_sha256`, and stored as `attestation_id` + `pae_sha256`."
        },
    )
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=1000))


class RevocationSchema(ma.Schema):
    id = ma.fields.String(required=True)
    sequence = ma.fields.Integer(required=True)
    target = ma.fields.Dict(required=True)
    reason = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True, metadata={"format": "date-time"})


class RevocationCreatedSchema(RevocationSchema):
    affected = ma.fields.Integer(
        required=True, metadata={"description": "Attestations this revocation marked revoked."}
    )
    reverify_job = ma.fields.String(
        allow_none=True, metadata={"description": "Id of the re-verification sweep job, if any."}
    )


class RevocationQuerySchema(ma.Schema):
    kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(KINDS))
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=revocation_store.MAX_PAGE)
    )
    cursor = ma.fields.String(load_default=None, metadata={"description": "From `next`."})


class RevocationPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RevocationSchema), required=True)
    next = ma.fields.String(allow_none=True, required=True)


def _feed_query() -> tuple[int, int]:
    # Parsed by hand, not by webargs: this is the hot path of every agent poll,
    # and marshmallow costs a tenth of a 304 answer. The OpenAPI doc is below.
    values = []
    for name, default, high in (
        ("since", 0, _MAX_CURSOR),
        ("limit", revocation_service.FEED_DEFAULT_LIMIT, FeedLimits().max_revocations),
    ):
        raw = request.args.get(name)
        if raw is None:
            values.append(default)
            continue
        low = 0 if name == "since" else 1
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
            raise InvalidInput(f"{name} must be an integer in {low}..{high}, got {raw[:40]!r}")
        values.append(int(raw))
    return values[0], values[1]


def _if_none_match(etag: str) -> bool:
    # Agents send back the one ETag they were given: compare that header as is
    # before werkzeug parses a list (a fifth of the view's time on a 304).
    raw = request.headers.get("If-None-Match")
    if raw is None:
        return False
    return raw.strip() == etag or request.if_none_match.contains_weak(etag.strip('"'))


_FEED_PARAMETERS = [
    {
        "in": "query",
        "name": "since",
        "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_CURSOR, "default": 0},
        "description": "The agent's cursor: `next` of its last page (0 at first).",
    },
    {
        "in": "query",
        "name": "limit",
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": FeedLimits().max_revocations,
            "default": revocation_service.FEED_DEFAULT_LIMIT,
        },
    },
]


@blp.route("", methods=["POST"])
@require_roles("admin")
@blp.arguments(RevocationCreateSchema)
@blp.response(201, RevocationCreatedSchema)
def create_revocation(body: dict[str, Any]) -> dict[str, Any]:
    """Revoke an attestation, subject, image, key, policy version or time window.

    Every attestation it covers is ``revoked`` when this answers; key and policy
    revocations also enqueue a re-verification sweep.
    """
    state = app_state()
    principal = current_principal()
    actor = f"token:{principal.token_id}"
    with state.session_factory.begin() as session:
        created = revocation_service.create_revocation(
            session, target=body["target"], reason=body["reason"], actor=actor, now=state.clock()
        )
    job_id = revocation_service.enqueue_reverify(
        state.session_factory,
        state.runner,
        created.revocation,
        now=state.clock(),
        created_by=principal.token_id,
    )
    return {**created.revocation.to_dict(), "affected": created.affected, "reverify_job": job_id}


@blp.route("", methods=["GET"])
@require_roles("admin")
@blp.arguments(RevocationQuerySchema, location="query")
@blp.response(200, RevocationPageSchema)
def list_revocations(query: dict[str, Any]) -> dict[str, Any]:
    """Revocations in sequence order; follow ``next`` for the next page."""
    with app_state().session_factory() as session:
        rows, next_cursor = revocation_store.list_revocations(
            session, kind=query["kind"], limit=query["limit"], cursor=query["cursor"]
        )
    return {"items": [r.to_dict() for r in rows], "next": next_cursor}


@blp.route("/feed", methods=["GET"])
@require_roles("agent", "admin")
@blp.doc(
    parameters=_FEED_PARAMETERS,
    responses={
        "200": {
            "description": "A DSSE envelope whose payload is one feed page.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "304": {"description": "The page named by If-None-Match is still current."},
        "409": {"description": "The cursor is ahead of the feed (another feed or a restore)."},
    },
)
def feed() -> Response:
    """The signed revocation feed after cursor ``since`` (ETag / If-None-Match)."""
    since, limit = _feed_query()
    state = app_state()
    answer = revocation_service.feed_answer(
        state.session_factory,
        since=since,
        limit=limit,
        now=state.clock(),
        cache=FEED_CACHE,
        state_cache=state.feed_state_cache,
        etag_matches=_if_none_match,
    )
    if answer.body is None:
        response = Response(status=304)
    else:
        response = Response(answer.body, status=200, mimetype="application/json")
    response.headers["ETag"] = answer.etag
    # Agents must revalidate every poll: a cached page would hide a revocation.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.route("/<string:revocation_id>", methods=["GET"])
@require_roles("admin")
@blp.response(200, RevocationSchema)
def get_revocation(revocation_id: str) -> dict[str, Any]:
    """One revocation."""
    with app_state().session_factory() as session:
        return revocation_store.get_revocation(session, revocation_id).to_dict()
