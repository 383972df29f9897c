# SPDX-License-Identifier: Apache-2.0
"""Typed answers of the server API (unverified metadata, parsed in ``_parse``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attestor.digests import Digest, KeyId, Sha256Hex
from attestor.verify import TrustedKey

__all__ = [
    "AttestationPage",
    "AttestationRef",
    "ClientLimits",
    "IssuedImage",
    "JobAccepted",
    "LayerRef",
    "ManifestRef",
    "Registration",
    "ServerKey",
    "ViolationReceipt",
]


@dataclass(frozen=True)
class ClientLimits:
    """Caps on what the client reads from the server."""

    max_json_bytes: int = 4 * 1024 * 1024
    max_envelope_bytes: int = 8 * 1024 * 1024
    max_manifest_bytes: int = 64 * 1024 * 1024
    max_problem_bytes: int = 64 * 1024
    #: Most pages :meth:`ServerClient.iter_attestations` follows.
    max_pages: int = 100


@dataclass(frozen=True)
class ServerKey:
    """A signing key the server publishes."""

    keyid: KeyId
    algorithm: str
    public_key_pem: str
    status: str

    def to_trusted_key(self) -> TrustedKey:
        """The key for :class:`attestor.verify.Verifier`.

        Raises:
            InvalidInput: if the PEM is not an accepted public key.
        """
        return TrustedKey.from_pem(self.public_key_pem, self.keyid)


@dataclass(frozen=True)
class Registration:
    """The answer to ``POST /v1/agents/register``."""

    agent_id: str
    keys: tuple[ServerKey, ...]


@dataclass(frozen=True)
class LayerRef:
    index: int
    digest: Digest
    diff_id: Digest


@dataclass(frozen=True)
class ManifestRef:
    """Where the layer's file manifest is; ``sha256`` is hex (``sha256:`` stripped)."""

    sha256: Sha256Hex
    tree_digest: str
    url: str


@dataclass(frozen=True)
class AttestationRef:
    """One item of ``GET /v1/attestations`` (unverified metadata)."""

    id: str
    image: Mapping[str, Any]
    layer: LayerRef
    status: str
    keyid: KeyId | None
    envelope_url: str
    bundle_url: str | None
    manifest: ManifestRef | None


@dataclass(frozen=True)
class AttestationPage:
    items: tuple[AttestationRef, ...]
    next: str | None


@dataclass(frozen=True)
class IssuedImage:
    """``POST /v1/attestations`` answered at once (200/201)."""

    reference: str
    digest: Digest
    attestations: tuple[AttestationRef, ...]


@dataclass(frozen=True)
class JobAccepted:
    """``POST /v1/attestations`` queued a job (202); poll ``url`` or retry later."""

    id: str
    url: str


@dataclass(frozen=True)
class ViolationReceipt:
    accepted: int
    duplicates: int
