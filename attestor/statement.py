# SPDX-License-Identifier: Apache-2.0
"""The in-toto Statement v1 with a SLSA provenance v1 predicate, one per layer.

Statements are plain dicts, not ``in_toto_attestation`` protobufs: protobuf
``Struct`` turns ints into floats (FACTS.md), which would change the signed
bytes. Field names follow the specs exactly:

* in-toto Statement v1: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
* SLSA provenance v1: https://slsa.dev/spec/v1.0/provenance

cosign parses statements strictly, so the top level holds only ``_type``,
``subject``, ``predicateType`` and ``predicate``. The layout of our build type
(:data:`BUILD_TYPE`) is pinned by ``schemas/slsa-provenance-v1.schema.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from attestor.digests import parse_digest
from attestor.errors import InvalidInput
from attestor.schemas import validate

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "ImageInfo",
    "ManifestRef",
    "ParentRef",
    "align_history",
    "build_layer_statement",
    "statement_bytes",
    "validate_statement",
]

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://slsa.dev/provenance/v1"
#: Our build type; its parameters are described in the provenance schema.
BUILD_TYPE: Final = "https://attestor.dev/layer/v1"

#: History fields carried into externalParameters (OCI image-spec config.md).
_HISTORY_FIELDS: Final = ("created", "created_by", "comment")


@dataclass(frozen=True)
class ImageInfo:
    """The image a layer belongs to, as resolved from the registry.

    ``name`` is ``registry/repository``; ``reference`` is what the caller asked
    for (tag and/or digest).
    """

    name: str
    reference: str
    manifest_digest: str
    manifest_media_type: str
    tag: str | None = None
    index_digest: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class ParentRef:
    """The attestation of the layer below: the link of the attestation chain."""

    chain_id: str
    envelope_sha256: str
    uri: str | None = None


@dataclass(frozen=True)
class ManifestRef:
    """The layer's file manifest (``attestor.manifest``), by content."""

    sha256: str
    tree_digest: str
    uri: str
    media_type: str = "application/vnd.attestor.layer-manifest.v1+json"


def _hex(digest: str, what: str) -> str:
    try:
        return parse_digest(digest)
    except InvalidInput:
        raise InvalidInput(f"{what} must be sha256:<hex>, got {str(digest)[:80]!r}") from None


def _prefixed(digest: str) -> str:
    # Stores keep envelope hashes as bare hex or as sha256:<hex>; accept both.
    return digest if digest.startswith("sha256:") else "sha256:" + digest


def _rfc3339(moment: datetime, what: str) -> str:
    if moment.tzinfo is None:
        raise InvalidInput(f"{what} must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def align_history(config: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    """One history entry (or None) per layer of an image config, bottom first.

    Entries with ``empty_layer: true`` made no layer and are skipped. If the
    remaining count differs from the number of ``rootfs.diff_ids`` the history
    cannot be aligned, and every layer gets None rather than a guess. Each
    entry keeps only ``created``, ``created_by`` and ``comment``.
    """
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
    count = len(diff_ids) if isinstance(diff_ids, list) else 0
    history = config.get("history")
    if not isinstance(history, list):
        return [None] * count
    layered = [h for h in history if isinstance(h, Mapping) and h.get("empty_layer") is not True]
    if len(layered) != count:
        return [None] * count
    return [{k: h[k] for k in _HISTORY_FIELDS if isinstance(h.get(k), str)} for h in layered]


def build_layer_statement(
    *,
    image: ImageInfo,
    layer_index: int,
    layer_digest: str,
    layer_media_type: str,
    diff_id: str,
    chain_id: str,
    history_entry: Mapping[str, Any] | None,
    parent: ParentRef | None,
    manifest_ref: ManifestRef,
    policy_id: str,
    policy_version: str,
    builder_id: str,
    invocation_id: str,
    started_on: datetime,
    finished_on: datetime,
) -> dict[str, Any]:
    """Build and schema-check the statement for one layer.

    The subject is the compressed layer blob, named ``<image.name>@<digest>``.

    Raises:
        InvalidInput: a digest is malformed, a time is naive, ``parent`` is given
            for layer 0 or missing above it, or the result fails the schemas.
    """
    if (parent is None) != (layer_index == 0):
        raise InvalidInput(
            f"layer {layer_index}: a parent attestation is required exactly above layer 0"
        )
    layer_hex = _hex(layer_digest, "layer digest")
    history = None
    if history_entry is not None:
        history = {
            k: history_entry[k] for k in _HISTORY_FIELDS if isinstance(history_entry.get(k), str)
        }
    image_params: dict[str, Any] = {
        "name": image.name,
        "reference": image.reference,
        "manifestDigest": image.manifest_digest,
        "mediaType": image.manifest_media_type,
    }
    for key, value in (
        ("tag", image.tag),
        ("indexDigest", image.index_digest),
        ("platform", image.platform),
    ):
        if value is not None:
            image_params[key] = value
    dependencies: list[dict[str, Any]] = [
        {
            "name": "image-manifest",
            "uri": f"{image.name}@{image.manifest_digest}",
            "digest": {"sha256": _hex(image.manifest_digest, "manifest digest")},
            "mediaType": image.manifest_media_type,
        }
    ]
    if parent is not None:
        parent_dep: dict[str, Any] = {
            "name": "parent-layer-attestation",
            "digest": {"sha256": _hex(_prefixed(parent.envelope_sha256), "envelope sha256")},
            "mediaType": "application/vnd.dsse.envelope.v1+json",
            "annotations": {"chainID": "sha256:" + _hex(parent.chain_id, "parent chainID")},
        }
        if parent.uri is not None:
            parent_dep["uri"] = parent.uri
        dependencies.append(parent_dep)
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{image.name}@{layer_digest}", "digest": {"sha256": layer_hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": image_params,
                    "layer": {
                        "index": layer_index,
                        "digest": layer_digest,
                        "mediaType": layer_media_type,
                    },
                    "history": history,
                },
                "internalParameters": {"policy": {"id": policy_id, "version": policy_version}},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": invocation_id,
                    "startedOn": _rfc3339(started_on, "started_on"),
                    "finishedOn": _rfc3339(finished_on, "finished_on"),
                },
                "byproducts": [
                    {"name": "diffID", "digest": {"sha256": _hex(diff_id, "diffID")}},
                    {"name": "chainID", "digest": {"sha256": _hex(chain_id, "chainID")}},
                    {
                        "name": "layer-manifest",
                        "uri": manifest_ref.uri,
                        "digest": {"sha256": _hex(manifest_ref.sha256, "manifest sha256")},
                        "mediaType": manifest_ref.media_type,
                        "annotations": {"treeDigest": manifest_ref.tree_digest},
                    },
                ],
            },
        },
    }
    validate_statement(statement)
    return statement


def validate_statement(statement: Mapping[str, Any]) -> None:
    """Check a statement against the Statement v1 and SLSA provenance v1 schemas.

    Raises:
        InvalidInput: naming the first failing JSON path.
    """
    validate(statement, "in-toto-statement-v1")
    validate(statement.get("predicate"), "slsa-provenance-v1")


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no NaN.

    Raises:
        InvalidInput: if the statement holds values JSON cannot represent.
    """
    try:
        return json.dumps(
            statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"statement is not serialisable as JSON: {e}") from None
