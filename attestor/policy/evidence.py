# SPDX-License-Identifier: Apache-2.0
"""What policy evaluation looks at: the image and its VERIFIED signatures (pure).

The contract between whoever gathers evidence and the engine
(``attestor.policy.evaluate_image``):

* **The engine verifies no cryptography.** An adapter fetches the image's
  manifest and config, its cosign signatures (the ``sha256-<hex>.sig`` tag,
  simple-signing payloads), its attestations (``.att``) and its Sigstore
  bundles (OCI referrers), verifies each with the project's one verifier
  (``attestor.verify``) against the authorities of the applying policies
  (public keys, signer URIs resolved to keys, keyless identities against the
  pinned trusted root), and hands over only what verified, as the objects
  below. Something that did not verify is left out, never passed with a flag.
* **Signer facts, not policy names.** A ``VerifiedSigner`` says who signed:
  the securesystemslib keyid of the key that verified (and the signer URI it
  came from, if any), or the certificate's OIDC issuer and subject. The
  engine matches these against each policy's authorities, so one set of
  evidence serves every policy.
* **Payload claims are passed verbatim.** A signature carries the
  ``docker-manifest-digest`` and ``docker-reference`` its signed payload
  names; an attestation its statement's subject digests. The engine, not
  the adapter, decides whether they name this image.
* **None means "not gathered".** ``signatures``, ``attestations``,
  ``config`` and the layer lists are ``None`` when the adapter did not
  fetch them and an empty tuple when it fetched and found nothing. A policy
  that needs evidence that is ``None`` fails that rule (fail closed); it
  never passes for lack of looking.
* **Bounded.** ``EvidenceLimits`` caps the counts and the config's size;
  an adapter must not build larger evidence (``Evidence`` refuses it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from attestor.errors import InvalidInput
from attestor.policy._cel import CelInput

__all__ = [
    "Evidence",
    "EvidenceLimits",
    "ImageEvidence",
    "VerifiedAttestation",
    "VerifiedSignature",
    "VerifiedSigner",
]


@dataclass(frozen=True)
class EvidenceLimits:
    """Caps on evidence, so one evaluation's time and memory stay bounded."""

    max_signatures: int = 64
    max_attestations: int = 64
    max_layers: int = 1000
    #: Canonical JSON size of the config, and of each attestation predicate.
    max_document_bytes: int = 512 * 1024


DEFAULT_LIMITS = EvidenceLimits()


@dataclass(frozen=True)
class VerifiedSigner:
    """Who made a signature that verified.

    Attributes:
        keyid: securesystemslib keyid of the public key that verified it
            (key-based signatures).
        signer_uri: The signer URI (``kms://...``) the key was resolved from,
            when the adapter verified with a key named by URI.
        issuer: OIDC issuer of the keyless certificate.
        subject: Identity (SAN) of the keyless certificate.
    """

    keyid: str | None = None
    signer_uri: str | None = None
    issuer: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        """Check that the signer is named.

        Raises:
            InvalidInput: neither a keyid or signer URI, nor an issuer and subject.
        """
        keyed = bool(self.keyid) or bool(self.signer_uri)
        keyless = bool(self.issuer) and bool(self.subject)
        if keyed == keyless:
            raise InvalidInput("a verified signer is a key or a keyless identity, exactly one")

    def describe(self) -> str:
        """A short human name: ``key sha256:ab12...`` or ``issuer/subject``."""
        if self.issuer and self.subject:
            return f"identity {self.subject} from {self.issuer}"
        if self.keyid:
            return f"key {_short(self.keyid)}"
        return f"key {self.signer_uri}"


def _short(value: str) -> str:
    return value if len(value) <= 20 else value[:16] + "…"


@dataclass(frozen=True)
class VerifiedSignature:
    """One image signature that verified, with what its signed payload names.

    Attributes:
        signer: Who signed it.
        manifest_digest: ``critical.image.docker-manifest-digest`` of the payload.
        docker_reference: ``critical.identity.docker-reference`` of the payload.
    """

    signer: VerifiedSigner
    manifest_digest: str
    docker_reference: str = ""


@dataclass(frozen=True)
class VerifiedAttestation:
    """One in-toto attestation whose envelope verified.

    Attributes:
        predicate_type: The statement's ``predicateType``.
        predicate: The statement's ``predicate`` (JSON values).
        signer: Who signed the envelope.
        subject_digests: The statement's ``subject[].digest.sha256``, as
            ``sha256:<hex>``.
    """

    predicate_type: str
    predicate: Mapping[str, Any]
    signer: VerifiedSigner
    subject_digests: tuple[str, ...]


@dataclass(frozen=True)
class ImageEvidence:
    """The image itself.

    Attributes:
        registry: ``host[:port]``.
        repository: Repository path.
        manifest_digest: The image manifest's digest (``None`` only before
            the manifest is fetched, for the name-only check).
        index_digest: The index it was selected from, when the reference
            named an index.
        config: The image config JSON (``created``, ``config``, ``rootfs``, ...).
        layer_digests: The manifest's layer blob digests, in order.
        diff_ids: The config's ``rootfs.diff_ids``, in order.
    """

    registry: str
    repository: str
    manifest_digest: str | None = None
    index_digest: str | None = None
    config: Mapping[str, Any] | None = None
    layer_digests: tuple[str, ...] | None = None
    diff_ids: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """``registry/repository[@digest]``."""
        at = f"@{self.manifest_digest}" if self.manifest_digest else ""
        return f"{self.registry}/{self.repository}{at}"

    def digests(self) -> tuple[str, ...]:
        """The digests a signature or attestation may name: manifest, then index."""
        return tuple(d for d in (self.manifest_digest, self.index_digest) if d)


def _json_size(value: object) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"evidence holds a value JSON cannot carry: {e}") from None


@dataclass(frozen=True)
class Evidence:
    """Everything one evaluation may look at. See the module docstring.

    Attributes:
        image: The image.
        signatures: Verified signatures (``None``: not gathered).
        attestations: Verified attestations (``None``: not gathered).
        limits: The caps checked on construction.
    """

    image: ImageEvidence
    signatures: tuple[VerifiedSignature, ...] | None = None
    attestations: tuple[VerifiedAttestation, ...] | None = None
    limits: EvidenceLimits = field(default=DEFAULT_LIMITS, compare=False)

    @functools.cached_property
    def rule_input(self) -> CelInput:
        """What CEL rules see, built (and converted) once per evidence object.

        ``image`` (registry, repository, manifest_digest, index_digest,
        layers, diff_ids), ``config``, and only the ``signatures`` and
        ``attestations`` that name this image's digests: a rule cannot be
        satisfied by evidence made for another image. ``None`` stays
        ``null`` (not gathered).
        """
        image = self.image
        digests = set(image.digests())
        signatures = None
        if self.signatures is not None:
            signatures = [
                {
                    "signer": asdict(s.signer),
                    "manifest_digest": s.manifest_digest,
                    "docker_reference": s.docker_reference,
                }
                for s in self.signatures
                if s.manifest_digest in digests
            ]
        attestations = None
        if self.attestations is not None:
            attestations = [
                {
                    "predicate_type": a.predicate_type,
                    "predicate": a.predicate,
                    "signer": asdict(a.signer),
                    "subject_digests": list(a.subject_digests),
                }
                for a in self.attestations
                if digests.intersection(a.subject_digests)
            ]
        return CelInput(
            {
                "image": {
                    "registry": image.registry,
                    "repository": image.repository,
                    "manifest_digest": image.manifest_digest,
                    "index_digest": image.index_digest,
                    "layers": None if image.layer_digests is None else list(image.layer_digests),
                    "diff_ids": None if image.diff_ids is None else list(image.diff_ids),
                },
                "config": image.config,
                "signatures": signatures,
                "attestations": attestations,
            }
        )

    def __post_init__(self) -> None:
        """Check the caps.

        Raises:
            InvalidInput: more signatures, attestations or layers than the
                limits allow, or a config or predicate over the size cap.
        """
        lim = self.limits
        image = self.image
        if not image.registry or not image.repository:
            raise InvalidInput("evidence names no registry or repository")
        counts = (
            ("signatures", self.signatures, lim.max_signatures),
            ("attestations", self.attestations, lim.max_attestations),
            ("layers", image.layer_digests, lim.max_layers),
            ("diffIDs", image.diff_ids, lim.max_layers),
        )
        for what, items, cap in counts:
            if items is not None and len(items) > cap:
                raise InvalidInput(f"evidence has {len(items)} {what}, limit {cap}")
        documents = [("config", image.config)] + [
            (f"attestation {a.predicate_type[:80]}", a.predicate) for a in self.attestations or ()
        ]
        for what, doc in documents:
            if doc is not None and _json_size(doc) > lim.max_document_bytes:
                raise InvalidInput(f"evidence {what} is over {lim.max_document_bytes} bytes")
