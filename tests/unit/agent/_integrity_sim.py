# SPDX-License-Identifier: Apache-2.0
"""A server simulator for the agent's integrity tests (implements the client's API).

It signs real per-layer statements (``attestor.statement``) with a real key,
serves them like ``GET /v1/attestations`` would, and records what the agent
posts, deduplicating violations by id like the server does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner

from agent.report import ContainerReport, Violation
from agent.server import (
    AttestationRef,
    IssuedImage,
    JobAccepted,
    LayerRef,
    ManifestRef,
    Registration,
    ServerKey,
    ViolationReceipt,
)
from attestor.digests import Digest, KeyId, Sha256Hex, chain_ids, parse_digest
from attestor.errors import Error, NotFound, Unavailable, UpstreamError
from attestor.manifest import FileManifest
from attestor.signing.dsse import sign_envelope
from attestor.statement import (
    ImageInfo,
    ParentRef,
    build_layer_statement,
    statement_bytes,
)
from attestor.statement import ManifestRef as StatementManifestRef
from tests.unit.agent._key_sets import entry, signed_set

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class SimLayer:
    digest: str
    diff_id: str
    media_type: str
    manifest: FileManifest


@dataclass
class SimServer:
    signer: CryptoSigner = field(default_factory=CryptoSigner.generate_ecdsa)
    agent_id: str = "agent-1"
    down: bool = False
    #: Raised by request_attestation (PolicyDenied, UpstreamError...) when set.
    issue_error: Error | None = None
    #: Layers request_attestation attests (image name -> layers) when asked.
    issuable: dict[str, Sequence[SimLayer]] = field(default_factory=dict)
    defer: bool = False
    #: Attest, then answer with a body the client cannot parse.
    malformed_answer: bool = False
    refs: dict[str, list[AttestationRef]] = field(default_factory=dict)
    envelopes: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    violations: dict[str, dict[str, Any]] = field(default_factory=dict)
    violation_posts: int = 0
    reports: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    requested: list[str] = field(default_factory=list)
    #: Served by key_set() instead of the set of ``signer`` alone, when set.
    key_set_body: bytes | None = None
    key_set_fetches: int = 0

    @property
    def keyid(self) -> KeyId:
        return KeyId(self.signer.public_key.keyid)

    def server_key(self) -> ServerKey:
        pem = (
            self.signer.public_key._crypto_key()  # noqa: SLF001
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return ServerKey(self.keyid, "ecdsa-p256", pem, "active")

    def _up(self) -> None:
        if self.down:
            raise Unavailable("simulated outage", retry_after=0)

    # -- issuing -----------------------------------------------------------

    def attest(
        self,
        layers: Sequence[SimLayer],
        *,
        image: str = "127.0.0.1:5000/sample/app",
        manifest_digest: str = "sha256:" + "a" * 64,
        status: str = "valid",
        signer: CryptoSigner | None = None,
    ) -> list[AttestationRef]:
        """Sign one statement per layer and publish them; returns the refs."""
        signer = signer or self.signer
        chains = chain_ids([Digest(x.diff_id) for x in layers])
        out: list[AttestationRef] = []
        parent: ParentRef | None = None
        for i, layer in enumerate(layers):
            data = layer.manifest.canonical_bytes()
            sha = parse_digest(layer.manifest.sha256)
            self.manifests[sha] = data
            statement = build_layer_statement(
                image=ImageInfo(image, f"{image}@{manifest_digest}", manifest_digest, MANIFEST_MT),
                layer_index=i,
                layer_digest=layer.digest,
                layer_media_type=layer.media_type,
                diff_id=layer.diff_id,
                chain_id=chains[i],
                history_entry=None,
                parent=parent,
                manifest_ref=StatementManifestRef(
                    sha256=layer.manifest.sha256,
                    tree_digest=layer.manifest.tree_digest,
                    uri=f"/v1/manifests/{layer.manifest.sha256}",
                ),
                policy_id="dev",
                policy_version="1",
                builder_id="https://attestor.test/builder",
                invocation_id=f"urn:uuid:{uuid.uuid4()}",
                started_on=T0,
                finished_on=T0,
            )
            envelope = sign_envelope(
                statement_bytes(statement), signer, keyid=signer.public_key.keyid
            )
            raw = envelope.to_json()
            att_id = str(uuid.uuid4())
            self.envelopes[att_id] = raw
            parent = ParentRef(chains[i], parse_digest("sha256:" + _sha(raw)))
            ref = AttestationRef(
                id=att_id,
                image={"name": image, "digest": manifest_digest},
                layer=LayerRef(i, Digest(layer.digest), Digest(layer.diff_id)),
                status=status,
                keyid=KeyId(signer.public_key.keyid),
                envelope_url=f"/v1/attestations/{att_id}/envelope",
                bundle_url=None,
                manifest=ManifestRef(Sha256Hex(sha), layer.manifest.tree_digest, ""),
            )
            self.refs.setdefault(layer.digest, []).append(ref)
            out.append(ref)
        return out

    # -- the client API ----------------------------------------------------

    def register(self, **_: Any) -> Registration:
        self._up()
        return Registration(self.agent_id, (self.server_key(),))

    def key_set(self) -> bytes:
        self._up()
        self.key_set_fetches += 1
        if self.key_set_body is not None:
            return self.key_set_body
        return signed_set([entry(self.signer)], [self.signer])

    def heartbeat(self, agent_id: str, **_: Any) -> None:
        self._up()
        self.heartbeats += 1

    def iter_attestations(
        self, layer_digest: str, *, status: str = "valid"
    ) -> Iterator[AttestationRef]:
        self._up()
        yield from (r for r in self.refs.get(layer_digest, []) if r.status == status)

    def envelope(self, attestation_id: str) -> bytes:
        self._up()
        if attestation_id not in self.envelopes:
            raise NotFound(attestation_id)
        return self.envelopes[attestation_id]

    def manifest(self, sha256: str) -> bytes:
        self._up()
        hex_ = sha256.removeprefix("sha256:")
        if hex_ not in self.manifests:
            raise NotFound(sha256)
        return self.manifests[hex_]

    def request_attestation(self, image: str) -> IssuedImage | JobAccepted:
        self._up()
        self.requested.append(image)
        if self.issue_error is not None:
            raise self.issue_error
        if self.defer:
            return JobAccepted("job-1", "/v1/jobs/job-1")
        name, _, digest = image.partition("@")
        refs = self.attest(self.issuable[name], image=name, manifest_digest=digest)
        if self.malformed_answer:
            raise UpstreamError("issue answer is malformed: no member 'image'")
        return IssuedImage(image, Digest(digest), tuple(refs))

    def post_violations(
        self, violations: Sequence[Violation], *, idempotency_key: str | None = None
    ) -> ViolationReceipt:
        self._up()
        self.violation_posts += 1
        dup = 0
        for v in violations:
            if v.id in self.violations:
                dup += 1
            self.violations[v.id] = v.to_dict()
        return ViolationReceipt(len(violations) - dup, dup)

    def post_report(self, report: ContainerReport) -> None:
        self._up()
        self.reports.append(report.to_dict())


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
