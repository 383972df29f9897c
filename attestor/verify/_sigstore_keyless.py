# SPDX-License-Identifier: Apache-2.0
"""Keyless (Fulcio certificate) bundle verification on top of sigstore-python 4.5.

sigstore-python does every keyless check (Fulcio chain to the trusted root,
SCTs, Rekor v1/v2 inclusion proofs, checkpoints, SETs, RFC 3161 timestamps,
the certificate policy, entry/bundle consistency). This module only *adds*
what it lacks, and moves one check out: the DSSE signature over the PAE is
verified by :class:`attestor.verify.Verifier` with the certificate's key (the
same code, and the same statement rules, as every other envelope), not by
sigstore-python (``verify_dsse_material``). Additions:

1. DSSE bundles logged as Rekor v1 ``intoto`` 0.0.2 (cosign) or as
   ``hashedrekord`` 0.0.1 over sha256(PAE) (allowed by the client spec):
   4.5.1 refuses both. We accept the kinds and check the entry body ourselves
   (payload hash or PAE digest, signature, verifier certificate), like sigstore-go.
2. ``TimeRange`` is a closed interval (protobuf-specs): 4.5.1 treats a TSA
   validity end as exclusive. We shift each TSA end by 1 microsecond, the
   resolution of the parsed ``genTime``, which makes ``<`` behave as ``<=``.
3. Checks it skips: the log entry's key must be a log of the trusted root and
   valid at the integrated time; the certificate must chain to a Fulcio CA
   whose ``validFor`` covers every verified signing time; the SCT must come
   from a CT log of the trusted root whose key was valid at the SCT time.

The verifier steps overridden here and the entry-body checks reused are
sigstore-python internals, reached through :mod:`attestor.sigstore_internals`
only (whose tests pin them); the conformance tests catch a change in behaviour.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import rekor_types
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import (
    Certificate,
    ExtendedKeyUsage,
    PrecertificateSignedCertificateTimestamps,
    load_der_x509_certificate,
    load_pem_x509_certificate,
)
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify.policy import VerificationPolicy
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.trustroot import v1 as trustroot_v1

from attestor.dsse import pae
from attestor.sigstore_internals import (
    EnvelopeModel,
    ExtensibleVerifier,
    TimestampSource,
    TimestampVerificationResult,
    bundle_dsse_envelope,
    hashedrekord_from_parts,
    log_entry_model,
    trusted_root_from_model,
    trusted_root_model,
    validate_dsse_v001_entry_body,
    validate_hashedrekord_v002_dsse_entry_body,
)

__all__ = ["KeylessVerifier", "closed_interval_root", "tlog_for_entry"]

_INTOTO = ("intoto", "0.0.2")
_HASHEDREKORD_V1 = ("hashedrekord", "0.0.1")
_TIME_KINDS = {("dsse", "0.0.1"), ("hashedrekord", "0.0.1"), _INTOTO}


def closed_interval_root(root: TrustedRoot) -> TrustedRoot:
    """A copy of ``root`` whose TSA validity ends are inclusive for sigstore-python."""
    inner = trusted_root_model(root).model_copy(deep=True)
    for authority in inner.timestamp_authorities:
        valid_for = authority.valid_for
        if valid_for is not None and valid_for.end is not None:
            valid_for.end = valid_for.end + timedelta(microseconds=1)
    return trusted_root_from_model(inner)


def tlog_for_entry(
    root: TrustedRoot, log_key_id: bytes
) -> trustroot_v1.TransparencyLogInstance | None:
    """The trusted root's transparency log whose log id is ``log_key_id``."""
    for tlog in trusted_root_model(root).tlogs:
        if tlog.log_id is not None and tlog.log_id.key_id == log_key_id:
            return tlog
    return None


def _in_range(valid_for: Any, when: datetime) -> bool:
    # TimeRange is closed: start <= t <= end; a missing end is open-ended.
    if valid_for is None:
        return True
    if when < valid_for.start:
        return False
    return valid_for.end is None or when <= valid_for.end


class KeylessVerifier(ExtensibleVerifier):
    """sigstore-python's ``Verifier`` with the additions in the module docstring.

    A root with only Rekor keys (or only TSAs) still serves key-signed bundles
    and timestamps; keyless verification with it is refused (``unusable``).
    """

    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        self._original_root = trusted_root
        super().__init__(trusted_root=closed_interval_root(trusted_root))

    def establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        """Same as sigstore-python 4.5.1, plus intoto 0.0.2 (cosign's Rekor v1 DSSE kind).

        Raises:
            sigstore.errors.VerificationError: if a time source cannot be used.
        """
        verified: list[TimestampVerificationResult] = []
        if bundle.verification_material.timestamp_verification_data:
            if not self.trusted_root.get_timestamp_authorities():
                raise SigstoreVerificationError(
                    "bundle has a signed timestamp but the trusted root has no TSA"
                )
            verified.extend(self.verify_timestamp_authority(bundle))
        inner = log_entry_model(bundle.log_entry)
        if (timestamp := inner.integrated_time) and inner.inclusion_promise:
            kv = (inner.kind_version.kind, inner.kind_version.version)
            if kv not in _TIME_KINDS:
                raise SigstoreVerificationError(
                    f"integrated time not supported for {kv[0]}/{kv[1]} entries"
                )
            verified.append(
                TimestampVerificationResult(
                    source=TimestampSource.TRANSPARENCY_SERVICE,
                    time=datetime.fromtimestamp(timestamp, tz=UTC),
                )
            )
        return verified

    def verify_signing_cert(self, bundle: Bundle, policy: VerificationPolicy) -> None:
        """sigstore-python's certificate checks, then the log, CA and CT log validity.

        Raises:
            sigstore.errors.VerificationError: on any failure, or an unusable root.
        """
        if self.unusable is not None:
            raise SigstoreVerificationError(f"trusted root unusable for keyless: {self.unusable}")
        super().verify_signing_cert(bundle, policy)
        # Past this point the SET and TSA signatures are verified, so the times are trusted.
        times = [vts.time for vts in self.establish_time(bundle)]
        inner = log_entry_model(bundle.log_entry)
        tlog = tlog_for_entry(self._original_root, inner.log_id.key_id)
        if tlog is None:
            raise SigstoreVerificationError(
                f"log {inner.log_id.key_id.hex()} is not a log of the trusted root"
            )
        if inner.integrated_time and inner.inclusion_promise:
            when = datetime.fromtimestamp(inner.integrated_time, tz=UTC)
            if not _in_range(tlog.public_key.valid_for, when):
                raise SigstoreVerificationError(
                    f"log key not valid at integrated time {when.isoformat()}"
                )
        self._check_ca_validity(bundle.signing_certificate, times)
        self._check_sct_log_validity(bundle.signing_certificate)

    def _check_sct_log_validity(self, cert: Certificate) -> None:
        # sigstore-python verified the one SCT against any CT key it holds; the key
        # must also be the log the SCT names, valid when it issued the SCT.
        scts = cert.extensions.get_extension_for_class(
            PrecertificateSignedCertificateTimestamps
        ).value
        for sct in scts:
            ctlog = next(
                (
                    c
                    for c in trusted_root_model(self._original_root).ctlogs
                    if c.log_id is not None and c.log_id.key_id == sct.log_id
                ),
                None,
            )
            if ctlog is None:
                raise SigstoreVerificationError(
                    f"SCT from CT log {sct.log_id.hex()} not in the trusted root"
                )
            when = sct.timestamp.replace(tzinfo=UTC)
            if not _in_range(ctlog.public_key.valid_for, when):
                raise SigstoreVerificationError(
                    f"CT log key not valid at SCT time {when.isoformat()}"
                )

    def _check_ca_validity(self, cert: Certificate, times: list[datetime]) -> None:
        ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        for when in times:
            for authority in trusted_root_model(self._original_root).certificate_authorities:
                if not _in_range(authority.valid_for, when):
                    continue
                certs = [
                    load_der_x509_certificate(c.raw_bytes)
                    for c in authority.cert_chain.certificates
                ]
                if not certs:
                    continue
                verifier = (
                    PolicyBuilder()
                    .store(Store(certs))
                    .time(when)
                    .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                    .build_client_verifier()
                )
                try:
                    verifier.verify(cert, [])
                    break
                except (X509VerificationError, ValueError):
                    continue
            else:
                raise SigstoreVerificationError(
                    f"no certificate authority valid at {when.isoformat()} issued the "
                    "signing certificate"
                )

    def verify_dsse(self, bundle: Bundle, policy: VerificationPolicy) -> tuple[str, bytes]:
        """Refused: use :meth:`verify_dsse_material` and the one statement verifier.

        sigstore-python's ``verify_dsse`` checks the envelope signature itself;
        here that is the job of :class:`attestor.verify.Verifier` alone, so the
        inherited method must not be reachable by accident.

        Raises:
            sigstore.errors.VerificationError: always.
        """
        raise SigstoreVerificationError("verify_dsse is not used: see verify_dsse_material")

    def verify_dsse_material(self, bundle: Bundle, policy: VerificationPolicy) -> None:
        """Everything sigstore-python's ``verify_dsse`` checks except the signature.

        The certificate (chain, SCTs, identity policy, validity at the verified
        times) and the log entry's consistency with the envelope: the entry
        binds this payload (or PAE digest), this signature and this
        certificate. Whether the signature is valid over the PAE with the
        certificate's key is left to :class:`attestor.verify.Verifier`, which
        then also checks the statement. Log kinds: Rekor v1 ``dsse`` 0.0.1,
        ``intoto`` 0.0.2 (cosign) and ``hashedrekord`` 0.0.1 over sha256(PAE);
        Rekor v2 ``hashedrekord`` 0.0.2.

        Raises:
            sigstore.errors.VerificationError: on any failure.
        """
        self.verify_signing_cert(bundle, policy)
        envelope = bundle_dsse_envelope(bundle)
        if envelope is None:
            raise SigstoreVerificationError("DSSE log entry but the bundle has no DSSE envelope")
        if len(envelope.signatures) != 1:
            count = len(envelope.signatures)
            raise SigstoreVerificationError(f"DSSE: exactly 1 signature allowed, got {count}")
        kv = log_entry_model(bundle.log_entry).kind_version
        kind = (kv.kind, kv.version)
        if kind == _INTOTO:
            _check_intoto_body(bundle, envelope)
        elif kind == _HASHEDREKORD_V1:
            _check_hashedrekord_dsse_body(bundle, envelope)
        elif kind == ("dsse", "0.0.1"):
            validate_dsse_v001_entry_body(bundle)
        elif kind == ("hashedrekord", "0.0.2"):
            validate_hashedrekord_v002_dsse_entry_body(bundle)
        else:
            raise SigstoreVerificationError(
                f"Unsupported DSSE log entry type: {kv.kind}/{kv.version}"
            )


def _check_hashedrekord_dsse_body(bundle: Bundle, envelope: EnvelopeModel) -> None:
    """A Rekor v1 hashedrekord 0.0.1 entry over sha256(PAE) (client spec allows it).

    The same comparison sigstore-python makes for message signatures, with the
    PAE digest and the envelope signature in their places.
    """
    if len(envelope.signatures) != 1:
        raise SigstoreVerificationError("DSSE envelope must have exactly one signature")
    # The PAE the one DSSE verifier checks the signature over. (sigstore-python's
    # counts the type in characters, not bytes: the same for the in-toto type,
    # the only one that verifier accepts.)
    digest = hashlib.sha256(pae(envelope.payload_type, envelope.payload)).digest()
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    signature = envelope.signatures[0].sig
    expected = hashedrekord_from_parts(bundle.signing_certificate, signature, hashed)
    try:
        actual = rekor_types.Hashedrekord.model_validate_json(
            log_entry_model(bundle.log_entry).canonicalized_body
        )
    except ValueError as e:
        raise SigstoreVerificationError(f"malformed hashedrekord log entry: {e}") from None
    if expected != actual:
        raise SigstoreVerificationError(
            "transparency log entry is inconsistent with other materials"
        )


def _check_intoto_body(bundle: Bundle, envelope: EnvelopeModel) -> None:
    """Rekor v1 intoto 0.0.2 body vs the bundle (sigstore-go ``validateIntoto``).

    The entry stores ``payloadHash`` = sha256(payload) and each signature as
    base64 of the base64 signature, with the verifier as base64 PEM. The
    envelope ``hash`` covers Rekor's own re-serialisation and cannot be
    recomputed, as with dsse 0.0.1 entries.
    """
    try:
        body = json.loads(log_entry_model(bundle.log_entry).canonicalized_body)
        content = body["spec"]["content"]
        payload_hash = content["payloadHash"]
        entry_env = content["envelope"]
        entry_sigs = entry_env["signatures"]
        if body.get("kind") != "intoto" or body.get("apiVersion") != "0.0.2":
            raise SigstoreVerificationError("intoto entry body has the wrong kind or version")
        if payload_hash.get("algorithm") != "sha256":
            raise SigstoreVerificationError("intoto entry payload hash is not sha256")
        expected = hashlib.sha256(envelope.payload).hexdigest()
        if payload_hash.get("value") != expected:
            raise SigstoreVerificationError("log entry payload hash does not match bundle")
        if entry_env.get("payloadType") != envelope.payload_type:
            raise SigstoreVerificationError("log entry payload type does not match bundle")
        if "payload" in entry_env:
            logged = base64.b64decode(base64.b64decode(entry_env["payload"], validate=True))
            if logged != envelope.payload:
                raise SigstoreVerificationError("log entry payload does not match bundle")
        der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
        # Compare certificates, not PEM text: line wrapping is not part of the identity.
        logged_sigs = [
            (
                base64.b64decode(base64.b64decode(s["sig"], validate=True), validate=True),
                load_pem_x509_certificate(
                    base64.b64decode(s["publicKey"], validate=True)
                ).public_bytes(serialization.Encoding.DER),
            )
            for s in entry_sigs
        ]
    except SigstoreVerificationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SigstoreVerificationError(f"malformed intoto log entry: {e}") from None
    bundle_sigs = [(s.sig, der) for s in envelope.signatures]
    if sorted(logged_sigs) != sorted(bundle_sigs):
        raise SigstoreVerificationError("log entry signatures do not match bundle")
