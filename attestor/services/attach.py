# SPDX-License-Identifier: Apache-2.0
"""Attach signed attestations to their image in the registry.

Two layouts per call, so that both generations of tools find them (the
documents are described in :mod:`attestor.registry.attach_docs`):

1. cosign's ``sha256-<hex>.att`` tag: one DSSE envelope per layer;
2. one Sigstore bundle v0.3 referrer manifest per attestation, with
   ``subject`` = the image manifest; where the registry has no referrers API
   (docker-registry 2.8 here, FACTS.md) also the referrers tag schema index.

Idempotent: attaching the same items again writes nothing and returns the
same digests.

Concurrency: the tags are updated read-modify-write, and docker-registry 2.8
has no conditional PUT (``If-Match``), so two writers with *different* items
can drop each other's entries. Within one process, attaches to one image are
serialised by a lock. Across processes, each tag is read back after writing and
re-merged if our entries are missing, which covers a writer that overwrote us
before we looked, but not one that overwrites us after; callers that attach
different item sets to one image from several processes must serialise that
themselves (e.g. a database advisory lock per image). Attaching the *same*
items concurrently is always safe: every writer writes the same documents.

Only the registry is touched; the caller has already stored the attestations.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from attestor.digests import Digest, parse_digest, sha256_digest
from attestor.dsse import parse_envelope
from attestor.errors import InvalidInput, UpstreamError
from attestor.registry import RegistryClient
from attestor.registry import attach_docs as docs
from attestor.registry import media_types as mt
from attestor.registry.attach_read import FetchedManifest, get_manifest, list_referrers
from attestor.registry.reference import ImageReference
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE

__all__ = ["AttachItem", "AttachResult", "attach_attestations"]

#: Read-modify-write rounds per tag before giving up on a tag that keeps moving.
_ATTEMPTS: Final = 4
#: Existing bundle referrers fetched to recognise ours (bounds the GETs per call).
_MAX_REFERRERS_CHECKED: Final = 512
#: Striped in-process locks, one held per attach (bounded memory, no nesting).
_LOCKS: Final = tuple(threading.Lock() for _ in range(64))


def _lock_for(repo: ImageReference, subject: str) -> threading.Lock:
    key = f"{repo.registry}/{repo.repository}@{subject}".encode()
    return _LOCKS[zlib.crc32(key) % len(_LOCKS)]


@dataclass(frozen=True)
class AttachItem:
    """One stored attestation: the exact envelope and bundle bytes we serve."""

    envelope_json: bytes
    bundle_json: bytes
    predicate_type: str


@dataclass(frozen=True)
class AttachResult:
    """Where the attestations now live in the image's repository."""

    #: ``sha256-<manifest hex>.att``.
    cosign_tag: str
    #: The manifest that tag points at after this call.
    cosign_manifest_digest: str
    #: The bundle referrer manifest of each item, in item order.
    referrers: tuple[str, ...]
    #: ``sha256-<manifest hex>`` when the tag schema was used; None with a referrers API.
    referrers_tag: str | None = None


#: Given the tag's current content, what to write: (manifest, media type, blobs
#: to push first), or None when the content already holds everything.
_Merge = Callable[[FetchedManifest | None], tuple[dict[str, Any], str, list[bytes]] | None]


def _check_inputs(
    image: ImageReference,
    manifest_digest: str,
    manifest_media_type: str,
    manifest_size: int,
    items: Sequence[AttachItem],
    now: datetime,
) -> ImageReference:
    parse_digest(manifest_digest)
    if image.digest is not None and image.digest != manifest_digest:
        raise InvalidInput(f"image {image} is not pinned to manifest {manifest_digest}")
    if manifest_media_type not in mt.IMAGE_MANIFEST_MEDIA_TYPES | mt.INDEX_MEDIA_TYPES:
        raise InvalidInput(f"subject media type {manifest_media_type[:100]!r} is not a manifest")
    if isinstance(manifest_size, bool) or not isinstance(manifest_size, int) or manifest_size < 1:
        raise InvalidInput(f"manifest size must be a positive integer, got {manifest_size!r}")
    if not items:
        raise InvalidInput("nothing to attach: no attestations given")
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    for i, item in enumerate(items):
        if not isinstance(item.predicate_type, str) or not item.predicate_type:
            raise InvalidInput(f"item {i}: predicate_type must be a non-empty string")
        # Fail before any push: what we attach must be what a verifier can read.
        try:
            parse_envelope(item.envelope_json)
        except InvalidInput as e:
            raise InvalidInput(f"item {i}: {e.message}") from None
        try:
            bundle = json.loads(item.bundle_json)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"item {i}: bundle is not JSON") from None
        if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_V03_MEDIA_TYPE:
            raise InvalidInput(f"item {i}: bundle mediaType must be {BUNDLE_V03_MEDIA_TYPE}")
    return image.by_digest(manifest_digest)


def _update_tag(client: RegistryClient, repo: ImageReference, tag: str, merge: _Merge) -> Digest:
    """Read ``tag``, write the merge, read back; repeat until nothing is missing."""
    for _ in range(_ATTEMPTS):
        current = get_manifest(client, repo, tag, accept=mt.ACCEPT_MANIFESTS)
        change = merge(current)
        if change is None:
            if current is None:  # pragma: no cover - a merge always adds to nothing
                raise UpstreamError(f"tag {tag} of {repo.name} has nothing to hold")
            return current.digest
        document, media_type, blobs = change
        for blob in blobs:
            client.push_blob(repo, blob)
        client.push_manifest(repo, docs.dumps(document), media_type, tag=tag)
    raise UpstreamError(
        f"tag {tag} of {repo.name} kept changing under us ({_ATTEMPTS} read-modify-write "
        "rounds); another writer is updating it",
        detail={"registry": repo.registry, "tag": tag},
    )


def _attach_cosign(
    client: RegistryClient, repo: ImageReference, manifest_digest: str, items: Sequence[AttachItem]
) -> tuple[str, Digest]:
    tag = docs.cosign_tag(manifest_digest)
    for item in items:
        client.push_blob(repo, item.envelope_json)
    layers = [
        docs.cosign_layer(i.envelope_json, i.predicate_type, json.loads(i.bundle_json))
        for i in items
    ]

    def merge(current: FetchedManifest | None) -> tuple[dict[str, Any], str, list[bytes]] | None:
        existing = None if current is None else current.document
        merged = docs.merge_cosign_manifest(existing, layers, where=f"{repo.name}:{tag}")
        if merged is None:
            return None
        manifest, config = merged
        media_type = (
            manifest.get("mediaType") or (current and current.media_type) or mt.OCI_MANIFEST
        )
        return manifest, str(media_type), [config]

    return tag, _update_tag(client, repo, tag, merge)


def _known_bundles(
    client: RegistryClient,
    repo: ImageReference,
    listed: Sequence[Mapping[str, Any]],
    subject: str,
    predicate_types: frozenset[str],
) -> dict[str, dict[str, Any]]:
    """Bundle digest -> index entry, for the bundle referrers already listed."""
    known: dict[str, dict[str, Any]] = {}
    checked = 0
    for entry in listed:
        annotations = entry.get("annotations")
        predicate = (
            annotations.get(docs.BUNDLE_PREDICATE_ANNOTATION)
            if isinstance(annotations, dict)
            else None
        )
        digest = entry.get("digest")
        if (
            entry.get("artifactType") != BUNDLE_V03_MEDIA_TYPE
            or not isinstance(digest, str)
            or (predicate is not None and predicate not in predicate_types)
        ):
            continue
        checked += 1
        if checked > _MAX_REFERRERS_CHECKED:
            break
        try:
            parse_digest(digest)
        except InvalidInput:
            continue
        fetched = get_manifest(client, repo, digest, accept=mt.OCI_MANIFEST)
        if fetched is None:
            continue
        doc = fetched.document
        layers, subj = doc.get("layers"), doc.get("subject")
        if (
            isinstance(subj, dict)
            and subj.get("digest") == subject
            and isinstance(layers, list)
            and len(layers) == 1
            and isinstance(layers[0], dict)
            and layers[0].get("mediaType") == BUNDLE_V03_MEDIA_TYPE
            and isinstance(layers[0].get("digest"), str)
        ):
            known.setdefault(layers[0]["digest"], dict(entry))
    return known


def _attach_referrers(
    client: RegistryClient,
    repo: ImageReference,
    subject: Mapping[str, Any],
    items: Sequence[AttachItem],
    now: datetime,
) -> tuple[tuple[str, ...], str | None]:
    subject_digest = str(subject["digest"])
    api = list_referrers(client, repo, subject_digest)
    tag = docs.referrers_tag(subject_digest)
    listed: Sequence[Mapping[str, Any]] = []
    if api is not None:
        listed = api
    else:
        current = get_manifest(client, repo, tag, accept=mt.OCI_INDEX)
        manifests = None if current is None else current.document.get("manifests")
        if isinstance(manifests, list):
            listed = [m for m in manifests if isinstance(m, dict)]
    known = _known_bundles(
        client, repo, listed, subject_digest, frozenset(i.predicate_type for i in items)
    )
    # cosign writes time.RFC3339 in UTC, seconds precision.
    created = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries: list[dict[str, Any]] = []
    empty_pushed = False
    for item in items:
        bundle_digest = sha256_digest(item.bundle_json)
        if bundle_digest not in known:
            if not empty_pushed:
                client.push_blob(repo, docs.EMPTY_JSON)
                empty_pushed = True
            client.push_blob(repo, item.bundle_json)
            manifest = docs.referrer_manifest(
                item.bundle_json, item.predicate_type, subject, created=created
            )
            body = docs.dumps(manifest)
            client.push_manifest(repo, body, mt.OCI_MANIFEST)
            known[bundle_digest] = docs.index_descriptor(body, manifest)
        entries.append(known[bundle_digest])
    if api is not None:
        return tuple(e["digest"] for e in entries), None

    def merge(current: FetchedManifest | None) -> tuple[dict[str, Any], str, list[bytes]] | None:
        existing = None if current is None else current.document
        index = docs.merge_referrers_index(existing, entries, where=f"{repo.name}:{tag}")
        return None if index is None else (index, mt.OCI_INDEX, [])

    _update_tag(client, repo, tag, merge)
    return tuple(e["digest"] for e in entries), tag


def attach_attestations(
    client: RegistryClient,
    image: ImageReference,
    manifest_digest: str,
    manifest_media_type: str,
    manifest_size: int,
    items: Sequence[AttachItem],
    *,
    now: datetime,
) -> AttachResult:
    """Push ``items`` next to the image, cosign-style and as bundle referrers.

    Args:
        client: the registry client (it needs push rights on the repository).
        image: the image's repository; if it carries a digest, it must be
            ``manifest_digest``.
        manifest_digest: the attested image manifest (the subject).
        manifest_media_type: its media type, as the registry serves it.
        manifest_size: its size in bytes.
        items: the stored envelopes and bundles, one per attestation.
        now: written as the referrers' ``org.opencontainers.image.created``.

    Raises:
        InvalidInput: a malformed digest, subject, envelope or bundle, no
            items, or a naive ``now``.
        Conflict: a tag we maintain holds an unrelated kind of document.
        TooLarge: a tag's current document exceeds the manifest cap.
        UpstreamError: the registry is unreachable, refuses a push, or a tag
            keeps changing under concurrent writers.
    """
    repo = _check_inputs(image, manifest_digest, manifest_media_type, manifest_size, items, now)
    subject = {"mediaType": manifest_media_type, "digest": manifest_digest, "size": manifest_size}
    try:
        with _lock_for(repo, manifest_digest):
            tag, cosign_digest = _attach_cosign(client, repo, manifest_digest, items)
            referrers, referrers_tag = _attach_referrers(client, repo, subject, items, now)
    except UpstreamError as e:
        # Say what we were doing: the client's message names only the request.
        raise UpstreamError(
            f"attaching attestations to {repo}: {e.message}", detail=e.detail
        ) from e
    return AttachResult(
        cosign_tag=tag,
        cosign_manifest_digest=cosign_digest,
        referrers=referrers,
        referrers_tag=referrers_tag,
    )
