# SPDX-License-Identifier: Apache-2.0
"""Find, verify and cache the attestation of each layer (issue 5, item 4).

The server is not trusted: every envelope is verified here against the keys
pinned at registration (``attestor.verify.Verifier``), the statement must
name this layer's blob digest, diffID and chainID, and the manifest must hash
to the digest and tree digest the signed statement carries. A layer without
an attestation makes the agent ask the server to issue one (image name and
digest only, never layer content).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.cache import AttestationCache, LayerRecord
from agent.containerd import LayerInfo
from agent.report import LayerStatus
from agent.server import AttestationRef, IssuedImage, JobAccepted
from attestor.digests import Digest, KeyId, Sha256Hex, parse_digest
from attestor.errors import (
    Error,
    InvalidInput,
    NotFound,
    PolicyDenied,
    Unavailable,
    UpstreamError,
    VerificationError,
)
from attestor.manifest import AttestedManifest, FileManifest
from attestor.verify import TrustedKey, VerifiedStatement, Verifier

if TYPE_CHECKING:
    # sigstore-python costs memory at import; only keyless layers need it.
    from attestor.verify.bundle import BundleVerifier, CertificateIdentity

__all__ = [
    "KEYLESS_PREFIX",
    "NO_KEYLESS_TRUST",
    "AttestationServer",
    "KeylessTrust",
    "AttestationSource",
    "LayerAttestation",
    "ServerAttestations",
    "StatementRefs",
    "image_reference",
    "statement_refs",
    "verify_keyless_layer",
    "verify_layer",
]

#: Key ids of attestations signed keylessly (``keyless:<sha256(issuer, identity)>``).
KEYLESS_PREFIX = "keyless:"
#: Why a keyless layer is refused when the node pins no keyless trust.
NO_KEYLESS_TRUST = "keyless attestation and no keyless trust configured"

#: Layers (and image requests) remembered at most; beyond, memory restarts.
_MAX_REMEMBERED = 4096


@dataclass(frozen=True)
class LayerAttestation:
    """What the agent concluded about one layer's attestation.

    ``manifest`` is set only when ``status`` is ``valid``; ``reason`` explains
    every other status (the server's words for ``unattested``).
    """

    layer_digest: Digest
    status: LayerStatus
    attestation_id: str | None = None
    keyid: KeyId | None = None
    manifest: AttestedManifest | FileManifest | None = None
    envelope_sha256: str | None = None
    reason: str | None = None


class AttestationSource(Protocol):
    """Where the sweep gets a layer's attested manifest."""

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation: ...


class AttestationServer(Protocol):
    """The part of :class:`agent.server.ServerClient` used here."""

    def iter_attestations(
        self, layer_digest: str, *, status: str = "valid"
    ) -> Iterator[AttestationRef]: ...

    def envelope(self, attestation_id: str) -> bytes: ...

    def manifest(self, sha256: str) -> bytes: ...

    def request_attestation(self, image: str) -> IssuedImage | JobAccepted: ...


@dataclass(frozen=True)
class StatementRefs:
    """What a verified layer statement commits to."""

    diff_id: Digest
    chain_id: Digest
    manifest_sha256: Sha256Hex
    tree_digest: str


def _byproduct(items: list[Any], name: str) -> Mapping[str, Any]:
    found = [i for i in items if isinstance(i, dict) and i.get("name") == name]
    if len(found) != 1:
        raise VerificationError(f"statement has {len(found)} byproducts named {name!r}, need 1")
    return found[0]


def _sha256_of(item: Mapping[str, Any], what: str) -> Sha256Hex:
    digest = item.get("digest")
    value = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(value, str):
        raise VerificationError(f"statement {what} has no sha256 digest")
    try:
        return parse_digest("sha256:" + value)
    except InvalidInput as e:
        raise VerificationError(f"statement {what}: {e.message}") from e


def statement_refs(statement: Mapping[str, Any]) -> StatementRefs:
    """Read diffID, chainID and the manifest reference from ``runDetails.byproducts``.

    Raises:
        VerificationError: if the statement does not carry them exactly once.
    """
    predicate = statement.get("predicate")
    run = predicate.get("runDetails") if isinstance(predicate, dict) else None
    items = run.get("byproducts") if isinstance(run, dict) else None
    if not isinstance(items, list):
        raise VerificationError("statement has no runDetails.byproducts")
    manifest = _byproduct(items, "layer-manifest")
    annotations = manifest.get("annotations")
    tree = annotations.get("treeDigest") if isinstance(annotations, dict) else None
    if not isinstance(tree, str):
        raise VerificationError("statement layer-manifest has no treeDigest")
    return StatementRefs(
        diff_id=Digest("sha256:" + _sha256_of(_byproduct(items, "diffID"), "diffID")),
        chain_id=Digest("sha256:" + _sha256_of(_byproduct(items, "chainID"), "chainID")),
        manifest_sha256=_sha256_of(manifest, "layer-manifest"),
        tree_digest=tree,
    )


def verify_layer(
    verifier: Verifier,
    envelope: bytes,
    layer: LayerInfo,
    fetch_manifest: Callable[[Sha256Hex], bytes],
) -> tuple[VerifiedStatement, AttestedManifest]:
    """Verify an envelope for ``layer`` and the manifest its statement names.

    Raises:
        VerificationError: bad signature, another subject, another diffID or
            chainID, or a manifest that does not match the signed digests
            (``detail["revoked"]`` is True for a revoked attestation).
        InvalidInput: the envelope or the manifest is malformed.
        Error: whatever ``fetch_manifest`` raises.
    """
    verified = verifier.verify_envelope(envelope, artifact_digest=layer.digest)
    refs = statement_refs(verified.statement)
    if refs.diff_id != layer.diff_id:
        raise VerificationError(f"statement diffID {refs.diff_id} != layer {layer.diff_id}")
    if refs.chain_id != layer.chain_id:
        raise VerificationError(f"statement chainID {refs.chain_id} != layer {layer.chain_id}")
    data = fetch_manifest(refs.manifest_sha256)
    # The compact form: the agent keeps it for every lower layer (issue 5, RSS).
    manifest = AttestedManifest.from_canonical_bytes(data)
    del data
    if manifest.sha256 != "sha256:" + refs.manifest_sha256:
        raise VerificationError(
            f"manifest is {manifest.sha256}, statement says {refs.manifest_sha256}"
        )
    if manifest.tree_digest != refs.tree_digest:
        raise VerificationError(
            f"manifest tree digest {manifest.tree_digest} != statement {refs.tree_digest}"
        )
    return verified, manifest


@dataclass(frozen=True)
class KeylessTrust:
    """Keyless trust pinned on the node: never taken from the server.

    Attributes:
        verifier: a bundle verifier built on the pinned Sigstore trusted root.
        identity: the certificate SAN and OIDC issuer that must have signed.
        fetch_bundle: reads an attestation's bundle from the server (untrusted bytes).
        now: the wall clock, for certificate and log validity.
    """

    verifier: BundleVerifier
    identity: CertificateIdentity
    fetch_bundle: Callable[[str], bytes]
    now: Callable[[], datetime]


def verify_keyless_layer(
    keyless: KeylessTrust,
    verifier: Verifier,
    bundle: bytes,
    layer: LayerInfo,
    fetch_manifest: Callable[[Sha256Hex], bytes],
) -> tuple[VerifiedStatement, AttestedManifest, bytes]:
    """Verify a keyless bundle for ``layer``, then its statement as :func:`verify_layer` does.

    The bundle must verify against the pinned root and identity (certificate
    chain, SCTs, log entry); the DSSE envelope inside it then goes through the
    same statement, manifest and revocation rules as a key-signed one, with
    the certificate's key. Returns the envelope bytes too (for the cache).

    Raises:
        VerificationError: the bundle, the identity or the statement does not verify.
        InvalidInput: the bundle, envelope or manifest is malformed.
        Error: whatever ``fetch_manifest`` raises.
    """
    from attestor.signing._keyless_sign import dsse_envelope, signing_certificate_pem
    from attestor.verify.bundle import Artifact

    keyless.verifier.verify(
        bundle, Artifact.from_digest(layer.digest), now=keyless.now(), identity=keyless.identity
    )
    document = json.loads(bundle)
    envelope = dsse_envelope(document).to_json()
    cert = x509.load_pem_x509_certificate(signing_certificate_pem(document))
    key_pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with_cert_key = verifier.with_keys([TrustedKey.from_pem(key_pem)])
    verified, manifest = verify_layer(with_cert_key, envelope, layer, fetch_manifest)
    return verified, manifest, envelope


def image_reference(name: str, digest: str) -> str:
    """``registry/repo@sha256:...`` from containerd's image name and target digest."""
    base = name.split("@", 1)[0]
    slash = base.rfind("/")
    colon = base.rfind(":")
    if colon > slash:
        base = base[:colon]
    return f"{base}@{digest}"


def _is_keyless(keyid: str | None) -> bool:
    return keyid is not None and keyid.startswith(KEYLESS_PREFIX)


def _status_of(error: VerificationError) -> LayerStatus:
    return "revoked" if error.detail.get("revoked") is True else "bad-signature"


class ServerAttestations:
    """:class:`AttestationSource` backed by the server, the verifier and the cache.

    Results are remembered for ``refresh_seconds`` (then the listing is read
    again, which is how a revocation reaches the agent until the feed lands);
    an attestation request is not repeated for ``request_retry_seconds``.
    """

    def __init__(
        self,
        server: AttestationServer,
        verifier: Verifier,
        *,
        cache: AttestationCache | None = None,
        clock: Callable[[], float],
        refresh_seconds: float = 300.0,
        request_retry_seconds: float = 60.0,
        keyless: KeylessTrust | None = None,
    ) -> None:
        self._server = server
        self._keyless = keyless
        self._verifier = verifier
        self._cache = cache
        self._clock = clock
        self._refresh = refresh_seconds
        self._retry = request_retry_seconds
        self._memo: dict[tuple[Digest, Digest], tuple[float, LayerAttestation]] = {}
        self._requested: dict[str, float] = {}

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation:
        """The attestation status of ``layer`` (never raises for server trouble)."""
        key = (layer.digest, layer.chain_id)
        now = self._clock()
        memo = self._memo.get(key)
        if memo is not None and now - memo[0] < self._refresh:
            return memo[1]
        try:
            result = self._from_server(layer, image_name, image_digest, now)
        except Unavailable as e:
            cached = self._from_cache(layer)
            if cached is not None:
                return cached
            return LayerAttestation(layer.digest, "pending", reason=e.message)
        except Error as e:
            result = LayerAttestation(layer.digest, "pending", reason=e.message)
        if result.status != "pending":
            if len(self._memo) >= _MAX_REMEMBERED:
                self._memo.clear()
            self._memo[key] = (now, result)
        return result

    def replace_verifier(self, verifier: Verifier) -> None:
        """Use new trust material (e.g. a newer revocation snapshot) from now on.

        Everything remembered is dropped, so the next sweep re-verifies every
        layer against it.
        """
        self._verifier = verifier
        self._memo.clear()

    def forget(self, layer_digest: Digest) -> None:
        """Drop what is remembered of a layer (it left the node)."""
        for key in [k for k in self._memo if k[0] == layer_digest]:
            del self._memo[key]

    # -- sources ------------------------------------------------------------

    def _manifest_bytes(self, sha256: Sha256Hex) -> bytes:
        if self._cache is not None:
            data = self._cache.get(sha256)
            if data is not None:
                return data
        data = self._server.manifest(sha256)
        if self._cache is not None:
            self._cache.put(data)
        return data

    def _from_cache(self, layer: LayerInfo) -> LayerAttestation | None:
        if self._cache is None:
            return None
        record = self._cache.layer(layer.digest)
        if record is None:
            return None
        # The envelope, or for a keyless layer the whole bundle (verified again).
        signed = self._cache.get(record.envelope_sha256)
        if signed is None or self._cache.get(record.manifest_sha256) is None:
            return None
        try:
            verified, manifest, _ = self._verify(
                layer, record.keyid, signed, self._cache_only_manifest
            )
        except (VerificationError, InvalidInput, NotFound):
            return None
        return LayerAttestation(
            layer.digest,
            "valid",
            attestation_id=record.attestation_id,
            keyid=record.keyid if _is_keyless(record.keyid) else KeyId(verified.keys[0]),
            manifest=manifest,
            envelope_sha256=verified.envelope_sha256,
            reason="server unavailable; verified from cache",
        )

    def _verify(
        self,
        layer: LayerInfo,
        keyid: str | None,
        signed: bytes,
        fetch_manifest: Callable[[Sha256Hex], bytes],
    ) -> tuple[VerifiedStatement, AttestedManifest, bytes]:
        """Verify ``signed`` (an envelope, or a keyless bundle) for ``layer``."""
        if _is_keyless(keyid):
            if self._keyless is None:
                raise VerificationError(NO_KEYLESS_TRUST)
            return verify_keyless_layer(
                self._keyless, self._verifier, signed, layer, fetch_manifest
            )
        verified, manifest = verify_layer(self._verifier, signed, layer, fetch_manifest)
        return verified, manifest, signed

    def _cache_only_manifest(self, sha256: Sha256Hex) -> bytes:
        data = self._cache.get(sha256) if self._cache is not None else None
        if data is None:
            raise NotFound(f"manifest {sha256} not cached")
        return data

    def _try_refs(self, layer: LayerInfo, refs: list[AttestationRef]) -> LayerAttestation | None:
        failure: LayerAttestation | None = None
        for ref in refs:
            if ref.layer.digest != layer.digest:
                continue
            keyless = _is_keyless(ref.keyid)
            try:
                if keyless and self._keyless is None:
                    raise VerificationError(NO_KEYLESS_TRUST)
                signed = (
                    self._keyless.fetch_bundle(ref.id)
                    if keyless and self._keyless is not None
                    else self._server.envelope(ref.id)
                )
                verified, manifest, _ = self._verify(layer, ref.keyid, signed, self._manifest_bytes)
            except (VerificationError, InvalidInput) as e:
                status = _status_of(e) if isinstance(e, VerificationError) else "bad-signature"
                failure = failure or LayerAttestation(
                    layer.digest, status, attestation_id=ref.id, keyid=ref.keyid,
                    reason=e.message,
                )  # fmt: skip
                continue
            keyid = ref.keyid if keyless and ref.keyid else KeyId(verified.keys[0])
            if self._cache is not None:
                self._cache.set_layer(
                    LayerRecord(
                        layer_digest=layer.digest,
                        attestation_id=ref.id,
                        envelope_sha256=self._cache.put(signed),
                        manifest_sha256=parse_digest(manifest.sha256),
                        keyid=keyid,
                    )
                )
            return LayerAttestation(
                layer.digest,
                "valid",
                attestation_id=ref.id,
                keyid=keyid,
                manifest=manifest,
                envelope_sha256=verified.envelope_sha256,
            )
        return failure

    def _from_server(
        self, layer: LayerInfo, image_name: str, image_digest: Digest, now: float
    ) -> LayerAttestation:
        valid = list(self._server.iter_attestations(layer.digest, status="valid"))
        found = self._try_refs(layer, valid)
        if found is not None:
            return found
        revoked = [
            r
            for r in self._server.iter_attestations(layer.digest, status="revoked")
            if r.layer.digest == layer.digest
        ]
        if revoked:
            return LayerAttestation(
                layer.digest,
                "revoked",
                attestation_id=revoked[0].id,
                keyid=revoked[0].keyid,
                reason=f"attestation {revoked[0].id} is revoked on the server",
            )
        return self._request(layer, image_reference(image_name, image_digest), now)

    def _request(self, layer: LayerInfo, image: str, now: float) -> LayerAttestation:
        last = self._requested.get(image)
        if last is not None and now - last < self._retry:
            return LayerAttestation(layer.digest, "pending", reason=f"requested for {image}")
        if len(self._requested) >= _MAX_REMEMBERED:
            self._requested.clear()
        self._requested[image] = now
        try:
            answer = self._server.request_attestation(image)
        except PolicyDenied as e:
            reasons = e.detail.get("reasons")
            why = e.message + (f" ({reasons})" if reasons else "")
            return LayerAttestation(layer.digest, "unattested", reason=why)
        except (UpstreamError, InvalidInput, NotFound) as e:
            if "status" not in e.detail:
                # Not the server's answer but our reading of a 2xx (a
                # malformed body): the attestations may well exist; list them.
                return self._after_issue(layer, image)
            return LayerAttestation(layer.digest, "unattested", reason=e.message)
        if isinstance(answer, JobAccepted):
            return LayerAttestation(layer.digest, "pending", reason=f"issuance job {answer.id}")
        return self._after_issue(layer, image)

    def _after_issue(self, layer: LayerInfo, image: str) -> LayerAttestation:
        # The listing, not the issue answer, is the one source of refs: the
        # envelope is verified here either way.
        listed = list(self._server.iter_attestations(layer.digest, status="valid"))
        found = self._try_refs(layer, listed)
        if found is not None:
            return found
        return LayerAttestation(
            layer.digest,
            "unattested",
            reason=f"server attested {image} but not layer {layer.digest}",
        )
