# SPDX-License-Identifier: Apache-2.0
"""Parts of a keyless Sigstore bundle, read offline: its DSSE envelope and certificate.

The bundle comes from keyless signing (:mod:`attestor.keyless`); these readers
need no network, so they stay in the core:

* the DSSE envelope alone, as cosign writes it (``keyid: ""``), which
  ``cosign verify-blob-attestation --certificate`` accepts with the bundle's
  certificate (:func:`signing_certificate_pem`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attestor.dsse import Envelope, Signature, parse_envelope
from attestor.errors import InvalidInput

__all__ = ["dsse_envelope", "signing_certificate_pem"]


def dsse_envelope(bundle: Mapping[str, Any]) -> Envelope:
    """The bundle's DSSE envelope alone, as cosign writes it (``keyid: ""``).

    The payload and signature bytes are kept verbatim, so the envelope verifies
    with the bundle certificate's public key.

    Raises:
        InvalidInput: if the bundle has no well-formed DSSE envelope.
    """
    raw = bundle.get("dsseEnvelope")
    if not isinstance(raw, Mapping):
        raise InvalidInput("bundle has no dsseEnvelope")
    envelope = parse_envelope(raw)
    # Keyless signatures have no key id; cosign writes the empty string.
    return Envelope(
        payload_type=envelope.payload_type,
        payload=envelope.payload,
        signatures=tuple(Signature(keyid="", sig=s.sig) for s in envelope.signatures),
    )


def signing_certificate_pem(bundle: Mapping[str, Any]) -> bytes:
    """The Fulcio leaf certificate of a bundle (v0.3 ``certificate`` or a v0.1/0.2 chain), PEM.

    Raises:
        InvalidInput: if the bundle carries no parsable certificate.
    """
    material = bundle.get("verificationMaterial")
    if not isinstance(material, Mapping):
        raise InvalidInput("bundle has no verificationMaterial")
    cert = material.get("certificate")
    if not isinstance(cert, Mapping):
        chain = material.get("x509CertificateChain")
        certs = chain.get("certificates") if isinstance(chain, Mapping) else None
        cert = certs[0] if isinstance(certs, list) and certs else None
    raw = cert.get("rawBytes") if isinstance(cert, Mapping) else None
    if not isinstance(raw, str):
        raise InvalidInput("bundle has no signing certificate")
    try:
        der = base64.b64decode(raw, validate=True)
        leaf = x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise InvalidInput(f"bundle certificate is malformed: {e}") from None
    return leaf.public_bytes(serialization.Encoding.PEM)
