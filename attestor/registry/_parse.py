# SPDX-License-Identifier: Apache-2.0
"""Strict parsing of manifests, indexes and image configs (pure, no I/O).

These bytes are untrusted even after their digest matched: a digest proves
which document we got, not that it is a well-formed image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from attestor import json_strict
from attestor.digests import Digest, parse_digest
from attestor.errors import InvalidInput, TooLarge
from attestor.registry import media_types as mt
from attestor.registry.models import ImageConfig, LayerDescriptor, RegistryLimits

__all__ = [
    "Descriptor",
    "loads_strict",
    "manifest_media_type",
    "parse_config",
    "parse_image_manifest",
    "select_platform",
]


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor, checked."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str]
    platform: Mapping[str, Any] | None = None


def loads_strict(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object strictly (see :func:`attestor.json_strict.loads_strict`).

    Raises:
        InvalidInput: if ``data`` is not UTF-8 JSON, repeats a key, holds
            ``NaN``/``Infinity``, nests too deeply or is not an object.
    """
    doc = json_strict.loads_strict(data, what=what)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return doc


def _descriptor(obj: object, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{where} is not an object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidInput(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidInput(f"{where}.digest is missing")
    try:
        parse_digest(digest)
    except InvalidInput:
        raise InvalidInput(f"{where}.digest {digest[:80]!r} is not sha256:<hex>") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{where}.size must be a non-negative integer")
    annotations = obj.get("annotations", {})
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise InvalidInput(f"{where}.annotations must map strings to strings")
    if obj.get("urls"):
        raise InvalidInput(f"{where} has external urls; foreign blobs are not fetched")
    platform = obj.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise InvalidInput(f"{where}.platform is not an object")
    return Descriptor(
        media_type, Digest(digest), size, MappingProxyType(dict(annotations)), platform
    )


def manifest_media_type(doc: Mapping[str, Any], content_type: str | None) -> str:
    """The media type of a manifest: its own ``mediaType`` field (covered by the
    digest) when present, else the HTTP ``Content-Type``.

    Raises:
        InvalidInput: if neither names a known manifest or index type.
    """
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidInput("manifest mediaType is not a string")
    header = (content_type or "").split(";", 1)[0].strip() or None
    media_type = declared or header
    if media_type not in mt.IMAGE_MANIFEST_MEDIA_TYPES | mt.INDEX_MEDIA_TYPES:
        raise InvalidInput(f"not an image manifest or index: media type {str(media_type)[:100]!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidInput("manifest schemaVersion must be 2")
    return media_type


def select_platform(index: Mapping[str, Any], platform: str) -> Descriptor:
    """The image manifest for ``os/arch[/variant]`` in an index.

    Raises:
        InvalidInput: if the index is malformed or has no manifest for ``platform``.
    """
    wanted = platform.split("/")
    if len(wanted) not in (2, 3) or not all(wanted):
        raise InvalidInput(f"platform must be os/arch[/variant], got {platform[:60]!r}")
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise InvalidInput("index has no manifests list")
    seen: list[str] = []
    for i, entry in enumerate(entries):
        desc = _descriptor(entry, f"manifests[{i}]")
        if desc.media_type not in mt.IMAGE_MANIFEST_MEDIA_TYPES or desc.platform is None:
            continue
        if desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue  # BuildKit's provenance manifests sit in the index as "unknown/unknown"
        have = [str(desc.platform.get("os")), str(desc.platform.get("architecture"))]
        variant = desc.platform.get("variant")
        seen.append("/".join(have + ([str(variant)] if variant else [])))
        if have == wanted[:2] and (len(wanted) == 2 or variant == wanted[2]):
            return desc
    raise InvalidInput(
        f"index has no image for platform {platform}; it has {sorted(set(seen)) or 'none'}",
        detail={"platform": platform, "available": sorted(set(seen))},
    )


def parse_image_manifest(
    doc: Mapping[str, Any], limits: RegistryLimits
) -> tuple[Descriptor, tuple[LayerDescriptor, ...]]:
    """The config descriptor and layers of an image manifest.

    Raises:
        InvalidInput: if the config is not an image config (an artifact), a layer
            media type is not one we attest, or the manifest is malformed.
        TooLarge: if it has more than ``limits.max_layers`` layers.
    """
    config = _descriptor(doc.get("config"), "config")
    if config.media_type not in mt.IMAGE_CONFIG_MEDIA_TYPES:
        raise InvalidInput(
            f"not a container image: config media type is {config.media_type[:100]!r}",
            detail={"config_media_type": config.media_type},
        )
    artifact_type = doc.get("artifactType")
    if artifact_type is not None:
        raise InvalidInput(f"not a container image: artifactType {str(artifact_type)[:100]!r}")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise InvalidInput("image manifest has no layers")
    if len(raw_layers) > limits.max_layers:
        raise TooLarge(f"image has {len(raw_layers)} layers, the cap is {limits.max_layers}")
    layers = []
    for i, raw in enumerate(raw_layers):
        desc = _descriptor(raw, f"layers[{i}]")
        if desc.media_type in mt.FOREIGN_LAYER_MEDIA_TYPES:
            raise InvalidInput(f"layers[{i}] is a non-distributable layer; not supported")
        if mt.layer_compression(desc.media_type) is None:
            raise InvalidInput(
                f"not a container image: layers[{i}] media type is {desc.media_type[:100]!r}",
                detail={"layer_media_type": desc.media_type},
            )
        layers.append(LayerDescriptor(desc.digest, desc.media_type, desc.size, desc.annotations))
    return config, tuple(layers)


def parse_config(data: bytes, layer_count: int) -> ImageConfig:
    """Parse an image config and check ``rootfs.diff_ids`` against the layers.

    Raises:
        InvalidInput: if it is malformed or lists a different number of diff_ids.
    """
    doc = loads_strict(data, "image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidInput("image config rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidInput("image config rootfs.diff_ids must be a list of digests")
    for d in diff_ids:
        try:
            parse_digest(d)
        except InvalidInput:
            raise InvalidInput(f"image config diff_id {d[:80]!r} is not sha256:<hex>") from None
    if len(diff_ids) != layer_count:
        raise InvalidInput(f"image config lists {len(diff_ids)} diff_ids for {layer_count} layers")
    history = doc.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise InvalidInput("image config history must be a list of objects")
    os_, arch = doc.get("os"), doc.get("architecture")
    return ImageConfig(
        diff_ids=tuple(Digest(d) for d in diff_ids),
        history=tuple(MappingProxyType(h) for h in history),
        os=os_ if isinstance(os_, str) else None,
        architecture=arch if isinstance(arch, str) else None,
        document=MappingProxyType(doc),
    )
