# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""``/v1/manifests``: layer file manifests by content (docs/layer-manifest.md)."""

from __future__ import annotations

from flask import Response

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import require_roles
from attestor.digests import parse_digest
from attestor.manifest import MEDIA_TYPE
from attestor.store import manifests as manifest_store

__all__ = ["blp"]

blp = Blueprint("manifests", __name__, url_prefix="/v1/manifests", description="Layer manifests.")


@blp.route("/<string:digest>", methods=["GET"])
@require_roles("admin", "pipeline", "agent")
@blp.doc(responses={"200": {"description": f"Canonical manifest bytes ({MEDIA_TYPE})."}})
def get_manifest(digest: str) -> Response:
    """The canonical bytes of a layer manifest; their sha256 is ``digest``."""
    parse_digest(digest)
    with app_state().session_factory() as session:
        stored = manifest_store.get_manifest(session, digest)
    response = Response(stored.body, mimetype=MEDIA_TYPE)
    # Content-addressed: the bytes behind a digest never change.
    response.headers["ETag"] = f'"{digest}"'
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
