# SPDX-License-Identifier: Apache-2.0
"""Parsing of server answers and problem+json errors (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from agent.server._models import (
    AttestationPage,
    AttestationRef,
    IssuedImage,
    JobAccepted,
    LayerRef,
    ManifestRef,
    Registration,
    ServerKey,
    ViolationReceipt,
)
from attestor import errors, json_strict
from attestor.digests import Digest, KeyId, Sha256Hex, parse_digest

__all__ = [
    "batch_idempotency_key",
    "error_from_response",
    "loads_strict",
    "parse_attestation",
    "parse_attestation_page",
    "parse_issue_response",
    "parse_keys",
    "parse_registration",
    "parse_violation_receipt",
]

#: Namespace of the deterministic batch idempotency keys (uuid5).
_BATCH_NS = uuid.UUID("6f1c4d52-3f0e-4c1e-9a57-0c2f3d7a9b10")
_ERRORS: dict[str, type[errors.Error]] = {
    cls.slug: cls
    for cls in (
        errors.InvalidInput,
        errors.TooLarge,
        errors.Unauthorized,
        errors.Forbidden,
        errors.NotFound,
        errors.Conflict,
        errors.PolicyDenied,
        errors.VerificationError,
        errors.UpstreamError,
        errors.Unavailable,
    )
}
_BY_STATUS: dict[int, type[errors.Error]] = {
    400: errors.InvalidInput,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.TooLarge,
    422: errors.InvalidInput,
    429: errors.Unavailable,
    502: errors.UpstreamError,
    503: errors.Unavailable,
    504: errors.Unavailable,
}
_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def _malformed(what: str, why: str) -> errors.UpstreamError:
    return errors.UpstreamError(f"server sent a malformed {what}: {why}")


def loads_strict(body: bytes, what: str) -> Any:
    """Parse UTF-8 JSON, refusing duplicate keys and NaN/Infinity.

    Raises:
        UpstreamError: if ``body`` is not such JSON (the server is at fault).
    """
    try:
        return json_strict.loads_strict(body, what=what)
    except errors.InvalidInput as e:
        # e.message is "<what>: <why>", so this reads like every other _malformed.
        raise errors.UpstreamError(f"server sent a malformed {e.message[:300]}") from e


def _obj(doc: object, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _malformed(what, "not an object")
    return doc


def _get(doc: object, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = _obj(doc, what).get(key)
    # bool is an int in Python; never accept it as a count or index.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _malformed(what, f"{key!r} missing or not {getattr(kind, '__name__', kind)}")
    return value


def _opt_str(doc: Mapping[str, Any], key: str, what: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise _malformed(what, f"{key!r} is not a string")
    return value


def _digest(value: str, what: str) -> Digest:
    try:
        parse_digest(value)
    except errors.InvalidInput as e:
        raise _malformed(what, e.message) from e
    return Digest(value)


def _key(doc: object) -> ServerKey:
    return ServerKey(
        keyid=KeyId(_get(doc, "keyid", str, "key")),
        algorithm=_get(doc, "algorithm", str, "key"),
        public_key_pem=_get(doc, "public_key_pem", str, "key"),
        status=_get(doc, "status", str, "key"),
    )


def parse_keys(doc: object) -> tuple[ServerKey, ...]:
    """``{"keys": [...]}`` -> keys.

    Raises:
        UpstreamError: if malformed.
    """
    return tuple(_key(k) for k in _get(doc, "keys", list, "key list"))


def parse_registration(doc: object) -> Registration:
    """The register answer.

    Raises:
        UpstreamError: if malformed.
    """
    agent_id = _get(doc, "agent_id", str, "registration")
    if not agent_id:
        raise _malformed("registration", "empty agent_id")
    return Registration(agent_id=agent_id, keys=parse_keys(doc))


def parse_attestation(doc: object) -> AttestationRef:
    """One attestation item.

    Raises:
        UpstreamError: if malformed.
    """
    what = "attestation"
    layer = _get(doc, "layer", dict, what)
    manifest_doc = _get(doc, "manifest", (dict, type(None)), what)
    manifest = None
    if manifest_doc is not None:
        sha = _get(manifest_doc, "sha256", str, "attestation manifest")
        sha = sha.removeprefix("sha256:")
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise _malformed("attestation manifest", f"bad sha256 {sha[:80]!r}")
        manifest = ManifestRef(
            sha256=Sha256Hex(sha),
            tree_digest=_get(manifest_doc, "tree_digest", str, "attestation manifest"),
            url=_get(manifest_doc, "url", str, "attestation manifest"),
        )
    keyid = _opt_str(_obj(doc, what), "keyid", what)
    return AttestationRef(
        id=_get(doc, "id", str, what),
        image=_get(doc, "image", dict, what),
        layer=LayerRef(
            index=_get(layer, "index", int, "attestation layer"),
            digest=_digest(_get(layer, "digest", str, "attestation layer"), "attestation layer"),
            diff_id=_digest(_get(layer, "diff_id", str, "attestation layer"), "attestation layer"),
        ),
        status=_get(doc, "status", str, what),
        keyid=KeyId(keyid) if keyid is not None else None,
        envelope_url=_get(doc, "envelope_url", str, what),
        bundle_url=_opt_str(_obj(doc, what), "bundle_url", what),
        manifest=manifest,
    )


def parse_attestation_page(doc: object) -> AttestationPage:
    """``{"items": [...], "next": cursor|null}``.

    Raises:
        UpstreamError: if malformed.
    """
    items = tuple(parse_attestation(i) for i in _get(doc, "items", list, "attestation page"))
    return AttestationPage(
        items=items, next=_opt_str(_obj(doc, "attestation page"), "next", "attestation page")
    )


def parse_issue_response(status: int, doc: object) -> IssuedImage | JobAccepted:
    """The answer to ``POST /v1/attestations`` (2xx only).

    Raises:
        UpstreamError: if malformed.
    """
    if status == 202:
        job = _get(doc, "job", dict, "job")
        return JobAccepted(id=_get(job, "id", str, "job"), url=_get(job, "url", str, "job"))
    image = _get(doc, "image", dict, "issued image")
    return IssuedImage(
        reference=_get(image, "reference", str, "issued image"),
        digest=_digest(_get(image, "digest", str, "issued image"), "issued image"),
        attestations=tuple(
            parse_attestation(a) for a in _get(doc, "attestations", list, "issued image")
        ),
    )


def parse_violation_receipt(doc: object) -> ViolationReceipt:
    """``{"accepted": n, "duplicates": m}``.

    Raises:
        UpstreamError: if malformed.
    """
    return ViolationReceipt(
        accepted=_get(doc, "accepted", int, "violation receipt"),
        duplicates=_get(doc, "duplicates", int, "violation receipt"),
    )


def _retry_after(value: str | None) -> int:
    # Seconds only; an HTTP-date or garbage falls back to the default.
    if value is not None and value.strip().isdigit():
        return max(1, min(int(value.strip()), 3600))
    return 5


def error_from_response(
    status: int, body: bytes | None, *, retry_after: str | None = None
) -> errors.Error:
    """The error for a non-2xx answer, from its problem+json body if it has one.

    The class follows the problem ``type``'s last ``:`` or ``/`` segment (our
    slugs), else the status. ``detail`` becomes the message; extension members
    (e.g. ``reasons``) are kept in ``Error.detail``.
    """
    doc: object = None
    if body:
        try:
            doc = loads_strict(body, "problem")
        except errors.UpstreamError:
            doc = None
    problem: dict[str, Any] = doc if isinstance(doc, dict) else {}
    type_ = problem.get("type") if isinstance(problem.get("type"), str) else ""
    slug = str(type_).rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    cls = _ERRORS.get(slug) or _BY_STATUS.get(status)
    if cls is None:
        cls = errors.UpstreamError if status >= 500 else errors.InvalidInput
    said = problem.get("detail") or problem.get("title")
    message = f"server: {said}" if isinstance(said, str) and said else f"server: HTTP {status}"
    extra = {k: v for k, v in problem.items() if k not in _PROBLEM_MEMBERS}
    detail: dict[str, object] = {**extra, "status": status, "problem_type": type_}
    if isinstance(said, str):
        detail["server_detail"] = said
    if cls is errors.Unavailable:
        return errors.Unavailable(message, retry_after=_retry_after(retry_after), detail=detail)
    return cls(message, detail=detail)


def batch_idempotency_key(violation_ids: Iterable[str]) -> str:
    """A key that is the same for every retry of the same batch."""
    return str(uuid.uuid5(_BATCH_NS, ",".join(sorted(violation_ids))))
