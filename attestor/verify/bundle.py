# SPDX-License-Identifier: Apache-2.0
"""Sigstore bundle verification (bundle v0.1, v0.2, v0.3; message signature or DSSE).

Two layers, so that a bundle is judged by the same rules whoever checks it:

* the Sigstore layer (:meth:`BundleVerifier.signing_material`): certificate
  chain, transparency log, timestamps and identity policy, or the managed key's
  log entries. For a DSSE bundle it checks neither the envelope signature nor
  the statement: it returns the envelope and the key that must have signed it
  (:class:`SigningMaterial`);
* the one DSSE verifier, :class:`attestor.verify.Verifier`, with that key:
  signature over the PAE, strict statement parsing, payloadType, subject,
  predicateType and schema, revocations. :meth:`BundleVerifier.verify` runs
  both; a message-signature bundle has no envelope, and its signature over the
  artifact digest is checked in the Sigstore layer.

Two signers:

* keyless (a Fulcio certificate): sigstore-python 4.5 does the work, with the
  additions listed in ``_sigstore_keyless`` (never fewer checks);
* managed key (``verificationMaterial.publicKey``): sigstore-python refuses
  these bundles, so this module parses them strictly (sigstore-models, unknown
  members forbidden; DSSE through :func:`attestor.dsse.parse_envelope`),
  checks a message signature with the caller's key and verifies every log
  entry and RFC 3161 timestamp against the trusted root (``_bundle_tlog``).

For a DSSE bundle the artifact names a subject of the in-toto statement. The
result is a frozen :class:`BundleVerification`; every rejection is a
:class:`attestor.errors.VerificationError` whose message says why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_der_x509_certificate
from pydantic import ValidationError
from rfc3161_client import decode_timestamp_response
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle as SigstoreBundle
from sigstore_models.bundle.v1 import Bundle as BundleModel
from sigstore_models.common.v1 import HashAlgorithm

from attestor.digests import Sha256Hex, parse_digest
from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, parse_envelope
from attestor.errors import Error, InvalidInput, VerificationError
from attestor.json_strict import loads_strict
from attestor.sigstore_internals import (
    TimestampSource,
    bundle_certificate_chain,
    bundle_dsse_envelope,
    bundle_media_type,
    cert_is_root_ca,
    log_entry_model,
)
from attestor.verify._bundle_checks import (
    check_base64,
    reason,
    verify_message_signature,
)
from attestor.verify._bundle_tlog import SignedContent, TlogEntryInfo, verify_tlog_entry
from attestor.verify._crypto import PublicKey
from attestor.verify._signing_material import SigningMaterial, keyless_envelope, trusted_key
from attestor.verify._sigstore_keyless import KeylessVerifier
from attestor.verify._verifier import Verifier
from attestor.verify.identity import (
    CertificateIdentity,
    IdentityPolicy,
    certificate_identity,
)
from attestor.verify.keys import TrustedKey
from attestor.verify.result import VerifiedStatement
from attestor.verify.trust import SigstoreTrust

__all__ = [
    "Artifact",
    "BundleLimits",
    "BundleVerification",
    "BundleVerifier",
    "CertificateIdentity",
    "SigningMaterial",
    "TlogEntryInfo",
    "verify_bundle",
]

#: Known bundle media types and the spec version each one means.
MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class Artifact:
    """What the bundle must cover: a sha256 digest, and the bytes when we have them.

    The bytes are only needed for Ed25519 and non-P-256 message signatures,
    which sign the message itself rather than a sha256 pre-hash.
    """

    sha256: Sha256Hex
    data: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> Artifact:
        """An artifact held in memory."""
        return cls(sha256=Sha256Hex(hashlib.sha256(data).hexdigest()), data=data)

    @classmethod
    def from_digest(cls, digest: str) -> Artifact:
        """An artifact known only by ``sha256:<64 hex>``.

        Raises:
            InvalidInput: if ``digest`` is not a sha256 digest.
        """
        return cls(sha256=parse_digest(digest))


@dataclass(frozen=True)
class BundleLimits:
    """Caps applied to untrusted bundles."""

    max_bundle_bytes: int = 16 * 1024 * 1024
    max_tlog_entries: int = 8
    max_timestamps: int = 32


@dataclass(frozen=True)
class BundleVerification(SigningMaterial):
    """What a verified bundle proved: its signing material, and for DSSE the statement.

    Unlike a bare :class:`SigningMaterial`, the envelope here verified with
    the key, under the statement rules given to :meth:`BundleVerifier.verify`.
    """

    #: DSSE: what :class:`attestor.verify.Verifier` verified.
    statement: VerifiedStatement | None = None

    @property
    def payload_type(self) -> str | None:
        """DSSE: the envelope's payload type."""
        return None if self.statement is None else IN_TOTO_PAYLOAD_TYPE

    @property
    def payload(self) -> bytes | None:
        """DSSE: the verbatim signed payload."""
        return None if self.statement is None else self.statement.payload

    @property
    def predicate_type(self) -> str | None:
        """DSSE: the statement's predicateType."""
        return None if self.statement is None else self.statement.predicate_type


class BundleVerifier:
    """Verifies Sigstore bundles against one loaded trust root.

    Build once per trust root (the sigstore-python verifier is reused).
    """

    def __init__(self, trust: SigstoreTrust, *, limits: BundleLimits | None = None) -> None:
        self._trust = trust
        self._limits = limits or BundleLimits()
        self._keyless = KeylessVerifier(trusted_root=trust.trusted_root)

    def verify(
        self,
        bundle: bytes,
        artifact: Artifact,
        *,
        now: datetime,
        identity: CertificateIdentity | None = None,
        key: PublicKey | TrustedKey | None = None,
        require_tlog: bool = True,
        statements: Verifier | None = None,
    ) -> BundleVerification:
        """Verify ``bundle`` over ``artifact``: the Sigstore layer, then the statement.

        Give exactly one of ``identity`` or ``key``. A DSSE envelope goes
        through ``statements.with_keys([<signing key>])``: the caller's
        statement, predicate and revocation rules with the key the Sigstore
        layer proved; without ``statements``, the default
        :class:`attestor.verify.Verifier` rules.

        Raises:
            VerificationError: with the reason, for any bundle that does not verify.
            InvalidInput: if neither or both of ``identity`` and ``key`` are given.
        """
        material = self.signing_material(
            bundle, artifact, now=now, identity=identity, key=key, require_tlog=require_tlog
        )
        statement = None
        if material.envelope is not None:
            rules = (
                Verifier(keys=[material.key])
                if statements is None
                else statements.with_keys([material.key])
            )
            statement = rules.verify_envelope(
                material.envelope, artifact_digest=material.artifact_sha256
            )
        return BundleVerification(**vars(material), statement=statement)

    def signing_material(
        self,
        bundle: bytes,
        artifact: Artifact,
        *,
        now: datetime,
        identity: CertificateIdentity | None = None,
        key: PublicKey | TrustedKey | None = None,
        require_tlog: bool = True,
    ) -> SigningMaterial:
        """The Sigstore layer alone; give exactly one of ``identity`` or ``key``.

        ``require_tlog`` (managed key only) demands at least one log entry;
        keyless bundles always need exactly one. A DSSE envelope comes back
        unverified, with the key it must verify with (see :class:`SigningMaterial`).

        Raises:
            VerificationError: with the reason, for any bundle that does not verify.
            InvalidInput: if neither or both of ``identity`` and ``key`` are given.
        """
        if (identity is None) == (key is None):
            raise InvalidInput("give exactly one of identity or key")
        try:
            doc = self._load(bundle)
            if key is not None:
                trusted = key if isinstance(key, TrustedKey) else trusted_key(key)
                return self._verify_key(bundle, doc, artifact, trusted, now, require_tlog)
            assert identity is not None  # noqa: S101 - checked above
            return self._verify_keyless(bundle, doc, artifact, identity, now)
        except Error as e:
            if isinstance(e, VerificationError):
                raise
            raise VerificationError(e.message) from None
        except (SigstoreError, ValidationError, ValueError, TypeError, KeyError) as e:
            raise VerificationError(reason(e)) from None
        except Exception as e:  # noqa: BLE001
            # Fail closed: an unexpected library error on untrusted input is a rejection.
            raise VerificationError(f"bundle rejected: {type(e).__name__}: {e}"[:300]) from None

    # -- parsing -----------------------------------------------------------------

    def _load(self, bundle: bytes) -> dict[str, Any]:
        if len(bundle) > self._limits.max_bundle_bytes:
            raise VerificationError(
                f"bundle is {len(bundle)} bytes, over the cap of {self._limits.max_bundle_bytes}"
            )
        try:
            # Strict: sigstore-models reads the same bytes again, and a repeated
            # member could give the two parsers different envelopes.
            doc = loads_strict(bundle, what="bundle")
        except InvalidInput as e:
            raise VerificationError(
                e.message.replace("bundle: not JSON", "bundle is not JSON")
            ) from None
        if not isinstance(doc, dict):
            raise VerificationError("bundle is not a JSON object")
        media_type = doc.get("mediaType")
        if media_type not in MEDIA_TYPES:
            raise VerificationError(f"unsupported bundle mediaType {str(media_type)[:100]!r}")
        check_base64(doc, self._limits.max_bundle_bytes)
        material = doc.get("verificationMaterial")
        if isinstance(material, dict):
            if len(material.get("tlogEntries") or []) > self._limits.max_tlog_entries:
                raise VerificationError("too many transparency log entries")
            tsd = material.get("timestampVerificationData") or {}
            if isinstance(tsd, dict) and (
                len(tsd.get("rfc3161Timestamps") or []) > self._limits.max_timestamps
            ):
                raise VerificationError("too many signed timestamps")
        return doc

    # -- keyless -------------------------------------------------------------------

    def _verify_keyless(
        self,
        raw: bytes,
        doc: dict[str, Any],
        artifact: Artifact,
        identity: CertificateIdentity,
        now: datetime,
    ) -> SigningMaterial:
        material = doc.get("verificationMaterial")
        if isinstance(material, dict) and "publicKey" in material:
            raise VerificationError("bundle is signed with a key: verify it with the public key")
        bundle = SigstoreBundle.from_json(raw)
        _reject_root_in_chain(bundle)
        policy = IdentityPolicy(identity)
        verifier = self._keyless
        envelope: Envelope | None = None
        if bundle_dsse_envelope(bundle) is not None:
            verifier.verify_dsse_material(bundle, policy)
            envelope = keyless_envelope(doc, bundle)
            content: Literal["message", "dsse"] = "dsse"
        else:
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(artifact.sha256))
            verifier.verify_artifact(hashed, bundle, policy)
            content = "message"
        entry = log_entry_model(bundle.log_entry)
        integrated = (
            datetime.fromtimestamp(entry.integrated_time, tz=UTC)
            if entry.integrated_time and entry.inclusion_promise
            else None
        )
        tsa_times = tuple(
            t.time
            for t in verifier.establish_time(bundle)
            if t.source is TimestampSource.TIMESTAMP_AUTHORITY
        )
        for when in (*tsa_times, *([integrated] if integrated else [])):
            if when > now:
                raise VerificationError(f"signed time {when.isoformat()} is in the future")
        san, issuer = certificate_identity(bundle.signing_certificate)
        return SigningMaterial(
            media_type=bundle_media_type(bundle),
            signer="keyless",
            identity=san,
            issuer=issuer,
            key_id=None,
            content=content,
            artifact_sha256=artifact.sha256,
            key=trusted_key(bundle.signing_certificate.public_key()),
            envelope=envelope,
            tlog_entries=(
                TlogEntryInfo(
                    log_id=entry.log_id.key_id.hex(),
                    log_index=entry.log_index,
                    kind=entry.kind_version.kind,
                    version=entry.kind_version.version,
                    integrated_time=integrated,
                ),
            ),
            timestamps=tsa_times,
        )

    # -- managed key -----------------------------------------------------------------

    def _verify_key(
        self,
        raw: bytes,
        doc: dict[str, Any],
        artifact: Artifact,
        trusted: TrustedKey,
        now: datetime,
        require_tlog: bool,
    ) -> SigningMaterial:
        key = trusted.public_key
        model = BundleModel.from_json(raw)
        material = model.verification_material
        if material.public_key is None:
            raise VerificationError(
                "bundle carries a certificate, not a key hint: verify it with an identity"
            )
        version = MEDIA_TYPES[model.media_type]
        envelope: Envelope | None = None
        if (model.message_signature is None) == (model.dsse_envelope is None):
            raise VerificationError(
                "bundle must hold exactly one of messageSignature, dsseEnvelope"
            )
        if model.message_signature is not None:
            signature = model.message_signature.signature
            digest = model.message_signature.message_digest
            if digest is not None and (
                digest.algorithm != HashAlgorithm.SHA2_256
                or digest.digest != bytes.fromhex(artifact.sha256)
            ):
                raise VerificationError("bundle message digest does not match the artifact")
            verify_message_signature(key, signature, artifact.sha256, artifact.data)
            signed = SignedContent(signature=signature, digest=bytes.fromhex(artifact.sha256))
            content: Literal["message", "dsse"] = "message"
        else:
            # The signature over the PAE is the statement verifier's to check;
            # here the log entries must describe exactly this signature.
            envelope = parse_envelope(doc["dsseEnvelope"])
            if len(envelope.signatures) != 1:
                count = len(envelope.signatures)
                raise VerificationError(f"bundle DSSE envelope needs 1 signature, got {count}")
            signature = envelope.signatures[0].sig
            signed = SignedContent(
                signature=signature,
                digest=hashlib.sha256(envelope.pae()).digest(),
                payload=envelope.payload,
                dsse_signatures=(signature,),
            )
            content = "dsse"
        root = self._trust.trusted_root
        entries = tuple(
            verify_tlog_entry(
                inner, root=root, key=key, content=signed, require_promise=version == "0.1"
            )
            for inner in material.tlog_entries
        )
        if require_tlog and not entries:
            raise VerificationError("bundle has no transparency log entry")
        timestamps = self._verify_timestamps(material, signature)
        # No verified-time requirement here, unlike keyless: a managed key has no
        # validity period for a time to be checked against.
        for when in [*timestamps, *(e.integrated_time for e in entries if e.integrated_time)]:
            if when > now:
                raise VerificationError(f"signed time {when.isoformat()} is in the future")
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return SigningMaterial(
            media_type=model.media_type,
            signer="key",
            identity=None,
            issuer=None,
            key_id=hashlib.sha256(spki).hexdigest(),
            content=content,
            artifact_sha256=artifact.sha256,
            key=trusted,
            envelope=envelope,
            tlog_entries=entries,
            timestamps=timestamps,
        )

    def _verify_timestamps(self, material: Any, signature: bytes) -> tuple[datetime, ...]:
        data = material.timestamp_verification_data
        raw_list = [t.signed_timestamp for t in (data.rfc3161_timestamps if data else [])]
        if not raw_list:
            return ()
        if len(set(raw_list)) != len(raw_list):
            raise VerificationError("duplicate signed timestamp")
        if not self._trust.trusted_root.get_timestamp_authorities():
            raise VerificationError("bundle has signed timestamps but the trust root has no TSA")
        times: list[datetime] = []
        for raw in raw_list:
            try:
                response = decode_timestamp_response(raw)
            except ValueError:
                raise VerificationError("malformed RFC 3161 timestamp") from None
            # sigstore-python's per-TSA check (chain, message imprint, TSA validFor),
            # with our inclusive validity end (see _sigstore_keyless).
            result = self._keyless.verify_signed_timestamp(response, signature)
            if result is None:
                # Fail closed: a timestamp we cannot verify is not ignored.
                raise VerificationError("signed timestamp does not verify against the trust root")
            times.append(result.time)
        return tuple(times)


def verify_bundle(
    bundle: bytes,
    artifact: Artifact,
    *,
    trust: SigstoreTrust,
    now: datetime,
    identity: CertificateIdentity | None = None,
    key: PublicKey | TrustedKey | None = None,
    require_tlog: bool = True,
    statements: Verifier | None = None,
) -> BundleVerification:
    """One-shot :meth:`BundleVerifier.verify`.

    Raises:
        VerificationError: with the reason, for any bundle that does not verify.
        InvalidInput: if the trust root is unusable or the arguments conflict.
    """
    return BundleVerifier(trust).verify(
        bundle,
        artifact,
        now=now,
        identity=identity,
        key=key,
        require_tlog=require_tlog,
        statements=statements,
    )


def _reject_root_in_chain(bundle: SigstoreBundle) -> None:
    # protobuf-specs: the chain MUST NOT include a root CA; sigstore-python only warns.
    for der in bundle_certificate_chain(bundle)[1:]:
        if cert_is_root_ca(load_der_x509_certificate(der)):
            raise VerificationError("bundle certificate chain contains a root CA")
