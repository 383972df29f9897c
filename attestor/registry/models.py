# SPDX-License-Identifier: Apache-2.0
"""Frozen values the registry client takes and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from attestor.digests import Digest
from attestor.registry.reference import ImageReference

__all__ = ["ImageConfig", "LayerDescriptor", "RegistryLimits", "ResolvedImage"]


@dataclass(frozen=True)
class RegistryLimits:
    """Byte and count caps applied to everything a registry sends us."""

    #: The distribution spec lets registries refuse manifests above 4 MiB.
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_config_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 8 * 1024 * 1024 * 1024
    max_layers: int = 512
    max_redirects: int = 5
    max_token_bytes: int = 64 * 1024
    #: Registry error bodies are read only this far, for the message.
    max_error_bytes: int = 4096
    #: Total seconds for one manifest, config, token or push exchange, headers
    #: and body together (the per-read timeout alone lets a trickle last forever).
    request_deadline_s: float = 30.0
    #: A blob of N bytes must arrive within ``blob_deadline_floor_s + N /
    #: blob_min_bytes_per_s`` seconds, and never more than ``blob_deadline_max_s``;
    #: after the floor it must also keep up with ``blob_min_bytes_per_s`` all along
    #: (the declared N is the registry's word, so it cannot set the pace alone).
    blob_deadline_floor_s: float = 60.0
    blob_min_bytes_per_s: int = 1024 * 1024
    blob_deadline_max_s: float = 3600.0

    def blob_deadline_s(self, size: int) -> float:
        """Seconds a blob of ``size`` (declared) bytes may take to download."""
        wanted = self.blob_deadline_floor_s + max(size, 0) / self.blob_min_bytes_per_s
        return min(wanted, self.blob_deadline_max_s)


@dataclass(frozen=True)
class LayerDescriptor:
    """One entry of a manifest's ``layers``."""

    digest: Digest
    media_type: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config we use; ``document`` is the whole parsed JSON."""

    diff_ids: tuple[Digest, ...]
    history: tuple[Mapping[str, Any], ...]
    os: str | None
    architecture: str | None
    document: Mapping[str, Any]


@dataclass(frozen=True)
class ResolvedImage:
    """An image manifest fetched and verified against its digest, with its config.

    ``reference`` is what the caller asked for (tag and/or digest). When it named
    an index, ``index_digest`` is that index and ``manifest_digest`` the platform
    manifest chosen from it.
    """

    reference: ImageReference
    manifest_digest: Digest
    media_type: str
    manifest: bytes
    config_digest: Digest
    config: bytes
    image_config: ImageConfig
    layers: tuple[LayerDescriptor, ...]
    index_digest: Digest | None = None
    platform: str | None = None

    @property
    def tag(self) -> str | None:
        """The tag the caller gave, if any."""
        return self.reference.tag

    @property
    def pinned(self) -> ImageReference:
        """``registry/repository@<manifest digest>``."""
        return self.reference.by_digest(self.manifest_digest)
