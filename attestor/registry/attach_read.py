# SPDX-License-Identifier: Apache-2.0
"""Reads the attach path needs and ``RegistryClient`` lacks: tags that may be
absent, and the OCI 1.1 referrers API.

Kept out of ``client.py`` (another module's job); these functions reuse the
client's transport, limits and error translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attestor.digests import Digest, parse_digest, sha256_digest
from attestor.errors import InvalidInput, TooLarge, UpstreamError
from attestor.registry import media_types as mt
from attestor.registry._parse import loads_strict
from attestor.registry.client import RegistryClient
from attestor.registry.reference import ImageReference

__all__ = ["FetchedManifest", "get_manifest", "list_referrers"]


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as the registry holds it, digest-checked."""

    body: bytes
    media_type: str | None
    digest: Digest
    document: dict[str, Any]


def _scope(ref: ImageReference) -> str:
    return f"repository:{ref.repository}:pull"


def get_manifest(
    client: RegistryClient, ref: ImageReference, ident: str, *, accept: str
) -> FetchedManifest | None:
    """GET ``manifests/<ident>`` (a tag or digest) of ``ref``'s repository; None on 404.

    Raises:
        TooLarge: the document exceeds ``max_manifest_bytes``.
        UpstreamError: unreachable, refused, other bytes than the digest named,
            or not a JSON object.
    """
    http, cap = client.transport, client.limits.max_manifest_bytes
    host = ref.registry
    with (
        client.deadline() as deadline,
        http.request(
            "GET",
            host,
            f"{ref.repository}/manifests/{ident}",
            scope=_scope(ref),
            deadline=deadline,
            headers={"Accept": accept},
        ) as resp,
    ):
        if resp.status_code == 404:
            return None
        client.expect(resp, {200}, f"fetching manifest {ref.name}:{ident}", host)
        body = http.read_capped(resp, host, cap, deadline)
        if body is None:
            raise TooLarge(f"manifest {ref.name}:{ident} exceeds {cap} bytes")
        content_type = resp.headers.get("Content-Type")
        header_digest = resp.headers.get("Docker-Content-Digest")
    digest = sha256_digest(body)
    expected = ident if ident.startswith("sha256:") else header_digest
    if expected is not None and expected != digest:
        raise UpstreamError(
            f"registry {host} served manifest {ref.name}:{ident} with digest {digest}, "
            f"expected {expected}",
            detail={"registry": host, "expected": expected, "actual": digest},
        )
    try:
        document = loads_strict(body, f"manifest {ref.name}:{ident}")
    except InvalidInput as e:
        raise UpstreamError(f"registry {host}: {e.message}") from None
    return FetchedManifest(body, content_type, digest, document)


def list_referrers(
    client: RegistryClient, ref: ImageReference, subject: str
) -> list[dict[str, Any]] | None:
    """The descriptors the OCI 1.1 referrers API lists for ``subject``.

    Returns None when the registry has no referrers API: distribution-spec 1.1
    says such a registry answers 404 (docker-registry 2.8 does, FACTS.md); we
    also treat any answer that is not an image index as "no API", since the
    fallback (the referrers tag schema) is safe on every registry. Only the
    first page is read (``Link`` pagination is not followed).

    Raises:
        InvalidInput: ``subject`` is not a sha256 digest.
        TooLarge: the answer exceeds ``max_manifest_bytes``.
        UpstreamError: unreachable, 5xx, or an index whose ``manifests`` is not a list.
    """
    parse_digest(subject)
    http, cap = client.transport, client.limits.max_manifest_bytes
    host = ref.registry
    with (
        client.deadline() as deadline,
        http.request(
            "GET",
            host,
            f"{ref.repository}/referrers/{subject}",
            scope=_scope(ref),
            deadline=deadline,
            headers={"Accept": mt.OCI_INDEX},
        ) as resp,
    ):
        content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        if resp.status_code != 200 or content_type != mt.OCI_INDEX:
            return None
        body = http.read_capped(resp, host, cap, deadline)
    if body is None:
        raise TooLarge(f"referrers of {ref.name}@{subject} exceed {cap} bytes")
    try:
        manifests = loads_strict(body, f"referrers of {ref.name}@{subject}").get("manifests")
    except InvalidInput as e:
        raise UpstreamError(f"registry {host}: {e.message}") from None
    if not isinstance(manifests, list):
        raise UpstreamError(f"registry {host}: referrers index has no manifests list")
    return [m for m in manifests if isinstance(m, dict)]
