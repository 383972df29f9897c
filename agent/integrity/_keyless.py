# SPDX-License-Identifier: Apache-2.0
"""Verify a keyless (Sigstore bundle) layer attestation against trust pinned on the node.

The bundle's Sigstore layer (certificate chain, log entry, identity) is
checked against the node's trusted root and identity; it hands back the DSSE
envelope and the certificate's key, and only then does the one verifier
check the signature, with the same statement, manifest and revocation rules
as a key-signed layer (:func:`agent.integrity._layer_statement.verify_layer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from agent.containerd import LayerInfo
from agent.integrity._layer_statement import verify_layer
from attestor.digests import Sha256Hex
from attestor.errors import VerificationError
from attestor.manifest import AttestedManifest
from attestor.verify import VerifiedStatement, Verifier

if TYPE_CHECKING:
    # sigstore-python costs memory at import; only keyless layers need it.
    from attestor.verify.bundle import BundleVerifier, CertificateIdentity

__all__ = [
    "KEYLESS_PREFIX",
    "NO_KEYLESS_TRUST",
    "KeylessTrust",
    "is_keyless",
    "verify_keyless_layer",
]

#: Key ids of attestations signed keylessly (``keyless:<sha256(issuer, identity)>``).
KEYLESS_PREFIX = "keyless:"
#: Why a keyless layer is refused when the node pins no keyless trust.
NO_KEYLESS_TRUST = "keyless attestation and no keyless trust configured"


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


def is_keyless(keyid: str | None) -> bool:
    """Whether ``keyid`` names a keyless attestation (see :data:`KEYLESS_PREFIX`)."""
    return keyid is not None and keyid.startswith(KEYLESS_PREFIX)


def verify_keyless_layer(
    keyless: KeylessTrust,
    verifier: Verifier,
    bundle: bytes,
    layer: LayerInfo,
    fetch_manifest: Callable[[Sha256Hex], BinaryIO],
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
    from attestor.verify.bundle import Artifact

    material = keyless.verifier.signing_material(
        bundle, Artifact.from_digest(layer.digest), now=keyless.now(), identity=keyless.identity
    )
    if material.envelope is None:
        raise VerificationError("keyless bundle carries no DSSE envelope")
    envelope = material.envelope.to_json()
    with_cert_key = verifier.with_keys([material.key])
    verified, manifest = verify_layer(with_cert_key, envelope, layer, fetch_manifest)
    return verified, manifest, envelope
