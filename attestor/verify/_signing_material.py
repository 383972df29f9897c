# SPDX-License-Identifier: Apache-2.0
"""What the Sigstore layer of bundle verification hands to the statement verifier.

A bundle is verified in two layers (see :mod:`attestor.verify.bundle`). The
Sigstore layer proves who signed and when; it ends here, with the envelope
and the key, which only :class:`attestor.verify.Verifier` checks together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sigstore.models import Bundle as SigstoreBundle

from attestor.digests import Sha256Hex
from attestor.dsse import Envelope, Signature, parse_envelope
from attestor.errors import InvalidInput, VerificationError
from attestor.sigstore_internals import bundle_dsse_envelope
from attestor.verify._bundle_tlog import TlogEntryInfo
from attestor.verify._crypto import public_key_pem
from attestor.verify.keys import TrustedKey

__all__ = ["SigningMaterial", "keyless_envelope", "trusted_key"]


@dataclass(frozen=True)
class SigningMaterial:
    """What the Sigstore layer proved, and what the statement verifier still must.

    For a DSSE bundle, ``envelope`` and ``key`` are NOT yet verified against
    each other: hand both to :class:`attestor.verify.Verifier`
    (``verifier.with_keys([material.key]).verify_envelope(material.envelope)``).
    """

    media_type: str
    signer: Literal["keyless", "key"]
    #: Keyless: the certificate's first SAN and OIDC issuer.
    identity: str | None
    issuer: str | None
    #: Managed key: sha256 hex of the key's SubjectPublicKeyInfo DER.
    key_id: str | None
    content: Literal["message", "dsse"]
    #: Message signature: the artifact it verified over. DSSE: the artifact a
    #: subject must name (the statement verifier checks that).
    artifact_sha256: Sha256Hex
    #: The certificate's public key, or the managed key (as the caller gave it).
    key: TrustedKey
    #: DSSE: the bundle's envelope (keyless: with cosign's empty keyid).
    envelope: Envelope | None
    tlog_entries: tuple[TlogEntryInfo, ...]
    #: Verified RFC 3161 timestamp times.
    timestamps: tuple[datetime, ...]


def trusted_key(key: object) -> TrustedKey:
    """The signing key as the statement verifier takes it.

    Raises:
        InvalidInput: for a key type, curve or size the verifier does not accept.
    """
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise InvalidInput(f"unsupported signing key type {type(key).__name__}")
    return TrustedKey.from_pem(public_key_pem(key))


def keyless_envelope(doc: dict[str, Any], bundle: SigstoreBundle) -> Envelope:
    """The bundle's envelope, parsed strictly, as cosign stores it (``keyid: ""``).

    Keyless signatures have no key id, so the hint is dropped: the envelope is
    then the one the server stores, whoever verifies it. It must hold the
    bytes sigstore-python checked against the log entry.

    Raises:
        InvalidInput: if the envelope is malformed.
        VerificationError: if the two parsers read different envelopes.
    """
    parsed = parse_envelope(doc.get("dsseEnvelope") or {})
    inner = bundle_dsse_envelope(bundle)
    if inner is None or (
        parsed.payload_type != inner.payload_type
        or parsed.payload != inner.payload
        or [s.sig for s in parsed.signatures] != [s.sig for s in inner.signatures]
    ):
        raise VerificationError("bundle DSSE envelope does not parse the same twice")
    return Envelope(
        payload_type=parsed.payload_type,
        payload=parsed.payload,
        signatures=tuple(Signature(keyid="", sig=s.sig) for s in parsed.signatures),
    )
