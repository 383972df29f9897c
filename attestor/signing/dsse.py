# SPDX-License-Identifier: Apache-2.0
"""DSSE signing: sign the PAE of a payload with a securesystemslib signer."""

from __future__ import annotations

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream

from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, Signature, pae
from attestor.errors import UpstreamError

__all__ = ["sign_envelope"]


def sign_envelope(
    payload: bytes,
    signer: Signer,
    *,
    keyid: str,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
) -> Envelope:
    """Sign ``payload`` (kept verbatim) into a one-signature DSSE envelope.

    The signature covers ``PAE(payload_type, payload)`` (DSSE protocol.md).
    securesystemslib's ECDSA signers produce DER (ASN.1) signatures, which is
    what cosign and the Sigstore clients expect.

    Args:
        payload: the exact bytes to sign (e.g. a serialized in-toto Statement).
        signer: any securesystemslib signer (file, KMS, HSM).
        keyid: the keyid written into the signature (a hint for verifiers).
        payload_type: the DSSE payloadType.

    Raises:
        UpstreamError: if the signer fails (a KMS or HSM being unreachable).
    """
    data = pae(payload_type, payload)
    try:
        signature = signer.sign(data)
    except Exception as e:  # signer plugins raise anything
        raise UpstreamError(f"signer failed: {type(e).__name__}: {e}") from e
    # securesystemslib carries signatures as hex strings.
    return Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=(Signature(keyid=keyid, sig=bytes.fromhex(signature.signature)),),
    )
