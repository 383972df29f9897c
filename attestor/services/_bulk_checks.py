# SPDX-License-Identifier: Apache-2.0
"""Bulk verification, per item: one envelope or bundle in, one :class:`Outcome` out.

Split from :mod:`attestor.services.bulk_verify` (request parsing, chunking and
recording) so that each module has one job. Everything here goes through the
one verification core (:mod:`attestor.verify`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestor.dsse import Envelope, parse_envelope
from attestor.errors import ConfigError, InvalidInput, VerificationError
from attestor.revocation.match import AttestationMeta, RevocationSet
from attestor.store.verifications import OurAttestation
from attestor.verify import TrustedKey, Verifier
from attestor.verify.bundle import Artifact, BundleVerifier, CertificateIdentity
from attestor.verify.trust import public_good

__all__ = ["Keyless", "Outcome", "Signed", "TrustSnapshot", "check_item", "check_keyless", "judge"]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The verdict on one distinct item (cacheable)."""

    status: str
    reason: str | None = None
    revoked: bool = False
    attestation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Compact form stored in the cache."""
        return {
            "s": self.status,
            "r": self.reason,
            "v": self.revoked,
            "a": self.attestation_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of :meth:`to_json`."""
        return cls(
            status=str(data["s"]),
            reason=data.get("r"),
            revoked=bool(data.get("v")),
            attestation_id=data.get("a"),
        )


@dataclass(frozen=True)
class TrustSnapshot:
    """Trust material read once per chunk: the verifier and what it depends on."""

    verifier: Verifier | None
    revoked_keyids: frozenset[str]
    revocations: RevocationSet
    #: Changes whenever a key is added or changes status, or a revocation is added
    #: (the set's version is part of it).
    fingerprint: str
    #: Every trusted key by keyid, for key-based bundles (``publicKey.hint``).
    keys: Mapping[str, TrustedKey] = field(default_factory=dict)
    #: The verification time of bundles (certificate and key validity windows).
    at: datetime | None = None
    #: Verifies keyless bundles; set only when the server signs keyless.
    keyless: BundleVerifier | None = None


@dataclass(frozen=True)
class Signed:
    """An envelope whose signatures and statement verified."""

    #: Its identity (:func:`attestor.dsse.pae_sha256`): our row and
    #: attestation revocations are found by it.
    pae_sha256: str
    #: keyids of the trusted keys whose signatures verified.
    keys: tuple[str, ...]
    #: ``sha256:<hex>`` of the subject that matched the artifact digest.
    subject: str | None
    #: Set when every key that signed it is revoked.
    revoked_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Keyless:
    """A keyless bundle, checked once its signer identity is looked up by what it signs."""

    pae_sha256: str
    bundle: bytes
    artifact_digest: str


def check_item(item: Mapping[str, Any], snapshot: TrustSnapshot) -> Outcome | Signed | Keyless:
    """Return a rejection, or what is known of a signature-valid envelope."""
    document = item["document"]
    bundle_keys: tuple[TrustedKey, ...] | None = None
    if item["kind"] == "bundle":
        unwrapped = _check_bundle(document, item["artifact_digest"], snapshot)
        if isinstance(unwrapped, Outcome | Keyless):
            return unwrapped
        document, bundle_keys = unwrapped
    if snapshot.verifier is None:
        return Outcome(status="rejected", reason="the server has no trusted keys")
    try:
        # A bundle's envelope must verify with a key its log entries name.
        verifier = (
            snapshot.verifier if bundle_keys is None else snapshot.verifier.with_keys(bundle_keys)
        )
        verified = verifier.verify_envelope(document, artifact_digest=item["artifact_digest"])
    except (VerificationError, InvalidInput, ConfigError) as e:
        return Outcome(status="rejected", reason=e.message)
    live = [k for k in verified.keys if k not in snapshot.revoked_keyids]
    matched = verified.matched_subject
    return Signed(
        verified.pae_sha256,
        verified.keys,
        None if matched is None or matched.sha256 is None else f"sha256:{matched.sha256}",
        () if live else verified.keys,
    )


@functools.cache
def _bundle_verifier() -> BundleVerifier:
    # Key-based bundles need no log entries, so the public-good root (bundled
    # with sigstore, no network) only has to parse; built once per process.
    return BundleVerifier(public_good("production"))


def _check_bundle(
    bundle: Mapping[str, Any], artifact_digest: str, snapshot: TrustSnapshot
) -> Outcome | Keyless | tuple[Envelope, tuple[TrustedKey, ...]]:
    """The Sigstore layer of a key-based bundle: its envelope and candidate keys, or a rejection.

    The keys are the trusted keys the bundle's log entries and timestamps
    verified with (every candidate, when it has none); the envelope's signature
    and statement are then checked by the one verifier with those keys, on
    the envelope path: it signs the same PAE as the envelope we stored, so
    revocations and our row apply alike.
    """
    material = bundle.get("verificationMaterial")
    if not isinstance(material, Mapping):
        return Outcome(status="rejected", reason="bundle has no verificationMaterial object")
    public_key = material.get("publicKey")
    if not isinstance(public_key, Mapping):
        if snapshot.keyless is None:
            return Outcome(
                status="rejected",
                reason="keyless bundle (certificate, no publicKey hint): this server "
                "signs with keys and has no Sigstore trust root for certificates",
            )
        try:
            envelope = parse_envelope(bundle.get("dsseEnvelope") or {})
        except InvalidInput as e:
            return Outcome(status="rejected", reason=f"dsseEnvelope: {e.message}")
        return Keyless(
            envelope.pae_sha256(),
            json.dumps(bundle, separators=(",", ":")).encode(),
            artifact_digest,
        )
    if snapshot.at is None:
        return Outcome(status="rejected", reason="no verification time for bundles")
    hint = public_key.get("hint")
    if isinstance(hint, str) and hint in snapshot.keys:
        candidates = [snapshot.keys[hint]]
    else:
        candidates = list(snapshot.keys.values())
    if not candidates:
        return Outcome(status="rejected", reason="the server has no trusted keys")
    raw = json.dumps(bundle, separators=(",", ":")).encode()
    try:
        artifact = Artifact.from_digest(artifact_digest)
    except (VerificationError, InvalidInput) as e:
        return Outcome(status="rejected", reason=e.message)
    failure = "bundle not signed by any trusted key"
    signed: Envelope | None = None
    passed: list[TrustedKey] = []
    for candidate in candidates:
        try:
            checked = _bundle_verifier().signing_material(
                raw, artifact, now=snapshot.at, key=candidate, require_tlog=False
            )
        except VerificationError as e:
            failure = e.message
            continue
        if checked.envelope is None:
            return Outcome(status="rejected", reason="bundle carries no DSSE envelope")
        signed = checked.envelope
        # One key under two keyids counts once (the verifier refuses a repeat).
        if all(candidate.public_key != p.public_key for p in passed):
            passed.append(candidate)
    if signed is not None:
        return signed, tuple(passed)
    if len(candidates) == 1 and isinstance(hint, str):
        return Outcome(status="rejected", reason=f"bundle key {hint}: {failure}")
    return Outcome(status="rejected", reason=failure)


def check_keyless(
    pending: Keyless, ours: OurAttestation | None, snapshot: TrustSnapshot
) -> Outcome | Signed:
    """Verify a keyless bundle against the signer our row of its envelope names."""
    if ours is None or ours.signer_identity is None or ours.signer_issuer is None:
        return Outcome(
            status="rejected",
            reason="keyless bundle of an envelope this server did not issue keyless: "
            "no signer identity to verify its certificate against",
        )
    assert snapshot.keyless is not None  # noqa: S101 - Keyless only exists then
    assert snapshot.at is not None  # noqa: S101 - set by run_chunk with keyless
    identity = CertificateIdentity(identity=ours.signer_identity, issuer=ours.signer_issuer)
    try:
        # The Sigstore layer proves the certificate; the envelope then goes
        # through the same verifier, rules and all, as a key-signed one.
        material = snapshot.keyless.signing_material(
            pending.bundle,
            Artifact.from_digest(pending.artifact_digest),
            now=snapshot.at,
            identity=identity,
        )
        if material.envelope is None:
            raise VerificationError("keyless bundle carries no DSSE envelope")
        rules = (
            Verifier(keys=[material.key])
            if snapshot.verifier is None
            else snapshot.verifier.with_keys([material.key])
        )
        rules.verify_envelope(material.envelope, artifact_digest=pending.artifact_digest)
    except (VerificationError, InvalidInput) as e:
        return Outcome(status="rejected", reason=e.message, attestation_id=ours.id)
    revoked = (ours.keyid,) if ours.keyid in snapshot.revoked_keyids else ()
    return Signed(pending.pae_sha256, (ours.keyid,), pending.artifact_digest, revoked)


def _metas(signed: Signed, ours: OurAttestation | None) -> list[AttestationMeta]:
    """What revocations are matched on: our stored row, else the verified statement."""
    if ours is not None:
        return [
            AttestationMeta(
                attestation_id=ours.id,
                layer_digest=ours.layer_digest,
                image_digest=ours.image_digest,
                keyid=ours.keyid,
                policy_id=ours.policy_id,
                policy_version=ours.policy_version,
                issued_at=ours.issued_at,
                pae_sha256=signed.pae_sha256,
            )
        ]
    # A foreign envelope: unknown issue time, so every applicable time window matches
    # (fail closed); one meta per signing key.
    return [
        AttestationMeta(layer_digest=signed.subject, keyid=k, pae_sha256=signed.pae_sha256)
        for k in signed.keys
    ]


def judge(
    signed: Signed, ours: OurAttestation | None, policy: object, revocations: RevocationSet
) -> Outcome:
    attestation_id = None if ours is None else ours.id
    if ours is not None and ours.status == "revoked":
        return Outcome(
            status="rejected",
            reason=f"attestation {ours.id} is revoked",
            revoked=True,
            attestation_id=attestation_id,
        )
    # An empty set matches nothing: skip building the metas (the usual case).
    for meta in _metas(signed, ours) if len(revocations) else ():
        revocation = revocations.match(meta)
        if revocation is not None:
            return Outcome(
                status="rejected",
                reason=f"revoked by {revocation.id}: {revocation.reason}",
                revoked=True,
                attestation_id=attestation_id,
            )
    if signed.revoked_keys:
        return Outcome(
            status="rejected",
            reason=f"signed only by revoked key(s) {', '.join(signed.revoked_keys)}",
            revoked=True,
            attestation_id=attestation_id,
        )
    if policy is not None:
        if ours is None:
            return Outcome(
                status="rejected",
                reason=f"policy {policy!r} can only be checked for attestations this server issued",
            )
        if ours.policy_id != policy:
            return Outcome(
                status="rejected",
                reason=f"attestation {ours.id} was issued under policy {ours.policy_id!r}, "
                f"not {policy!r}",
                attestation_id=attestation_id,
            )
    return (
        _VERIFIED
        if attestation_id is None
        else Outcome(status="verified", attestation_id=attestation_id)
    )


_VERIFIED = Outcome(status="verified")
