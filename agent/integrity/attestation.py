# SPDX-License-Identifier: Apache-2.0
"""Find, verify and cache the attestation of each layer.

The server is not trusted: every envelope is verified on the node
(:mod:`agent.integrity._layer_statement` for the statement and its manifest,
:mod:`agent.integrity._keyless` for keyless bundles). This module fetches,
remembers and caches the results, and makes the agent ask the server to issue
an attestation for a layer without one (image name and digest only, never
layer content).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from agent.cache import AttestationCache, LayerRecord
from agent.containerd import LayerInfo
from agent.integrity._keyless import (
    KEYLESS_PREFIX,
    NO_KEYLESS_TRUST,
    KeylessTrust,
    is_keyless,
    verify_keyless_layer,
)
from agent.integrity._layer_statement import StatementRefs, statement_refs, verify_layer
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
from attestor.verify import VerifiedStatement, Verifier

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


def image_reference(name: str, digest: str) -> str:
    """``registry/repo@sha256:...`` from containerd's image name and target digest."""
    base = name.split("@", 1)[0]
    slash = base.rfind("/")
    colon = base.rfind(":")
    if colon > slash:
        base = base[:colon]
    return f"{base}@{digest}"


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
        refresh_keys: Callable[[float], bool] | None = None,
    ) -> None:
        self._server = server
        # Asked before an envelope that fails counts as bad-signature: given the
        # clock reading from before the envelope was fetched, it fetches the
        # server's key set unless a fetch began after it, and says whether the
        # pinned keys changed (a rotation): then the envelope is judged again.
        self._refresh_keys = refresh_keys
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

    def _manifest_stream(self, sha256: Sha256Hex) -> BinaryIO:
        if self._cache is not None:
            cached = self._cache.open_blob(sha256)
            if cached is not None:
                return cached
        data = self._server.manifest(sha256)
        if self._cache is not None:
            self._cache.put(data)
            cached = self._cache.open_blob(sha256)
            if cached is not None:
                # Parsed from the file: the downloaded bytes are freed on
                # return, before the compact form is built beside them.
                return cached
        return io.BytesIO(data)

    def _from_cache(self, layer: LayerInfo) -> LayerAttestation | None:
        if self._cache is None:
            return None
        record = self._cache.layer(layer.digest)
        if record is None:
            return None
        # The envelope, or for a keyless layer the whole bundle (verified again).
        signed = self._cache.get(record.envelope_sha256)
        if signed is None:
            return None
        # A missing manifest is found by _cache_only_manifest (NotFound, a miss
        # below), without reading the whole blob here as well.
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
            keyid=record.keyid if is_keyless(record.keyid) else KeyId(verified.keys[0]),
            manifest=manifest,
            envelope_sha256=verified.envelope_sha256,
            reason="server unavailable; verified from cache",
        )

    def _verify(
        self,
        layer: LayerInfo,
        keyid: str | None,
        signed: bytes,
        fetch_manifest: Callable[[Sha256Hex], BinaryIO],
    ) -> tuple[VerifiedStatement, AttestedManifest, bytes]:
        """Verify ``signed`` (an envelope, or a keyless bundle) for ``layer``."""
        if is_keyless(keyid):
            if self._keyless is None:
                raise VerificationError(NO_KEYLESS_TRUST)
            return verify_keyless_layer(
                self._keyless, self._verifier, signed, layer, fetch_manifest
            )
        verified, manifest = verify_layer(self._verifier, signed, layer, fetch_manifest)
        return verified, manifest, signed

    def _cache_only_manifest(self, sha256: Sha256Hex) -> BinaryIO:
        cached = self._cache.open_blob(sha256) if self._cache is not None else None
        if cached is None:
            raise NotFound(f"manifest {sha256} not cached")
        return cached

    def _try_refs(self, layer: LayerInfo, refs: list[AttestationRef]) -> LayerAttestation | None:
        failure: LayerAttestation | None = None
        for ref in refs:
            if ref.layer.digest != layer.digest:
                continue
            keyless = is_keyless(ref.keyid)
            fetched_at = self._clock()
            try:
                if keyless and self._keyless is None:
                    raise VerificationError(NO_KEYLESS_TRUST)
                signed = (
                    self._keyless.fetch_bundle(ref.id)
                    if keyless and self._keyless is not None
                    else self._server.envelope(ref.id)
                )
                try:
                    verified, manifest, _ = self._verify(
                        layer, ref.keyid, signed, self._manifest_stream
                    )
                except VerificationError as e:
                    if keyless or _status_of(e) == "revoked" or not self._new_keys(fetched_at):
                        raise
                    verified, manifest, _ = self._verify(
                        layer, ref.keyid, signed, self._manifest_stream
                    )
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

    def _new_keys(self, since: float) -> bool:
        return self._refresh_keys is not None and self._refresh_keys(since)

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
