# SPDX-License-Identifier: Apache-2.0
"""DSSE signature verification against trusted keys, with a threshold."""

from __future__ import annotations

from collections.abc import Sequence

from attestor.dsse import Envelope
from attestor.errors import VerificationError
from attestor.verify.keys import TrustedKey

__all__ = ["verify_envelope_signatures"]


def verify_envelope_signatures(
    envelope: Envelope, keys: Sequence[TrustedKey], *, threshold: int = 1
) -> tuple[TrustedKey, ...]:
    """Check the envelope's signatures over its PAE; return the keys that verified.

    Counts DISTINCT trusted keys with at least one valid signature, whatever
    keyid the signature claims: the keyid is unauthenticated and only decides
    which key is tried first (cosign ignores it too). A key counts once even if
    several signatures verify with it, so one key cannot meet a threshold of 2.

    Raises:
        VerificationError: if fewer than ``threshold`` distinct keys verified, or
            ``threshold`` < 1, or no keys are given.
    """
    if threshold < 1:
        raise VerificationError(f"threshold must be at least 1, got {threshold}")
    if not keys:
        raise VerificationError("no trusted keys configured")
    if threshold > len(keys):
        raise VerificationError(
            f"threshold {threshold} can never be met by {len(keys)} trusted key(s)"
        )
    data = envelope.pae()
    verified: list[TrustedKey] = []
    for signature in envelope.signatures:
        if len(keys) == 1 and not verified:  # one key: nothing to order
            remaining: Sequence[TrustedKey] = keys
        else:
            remaining = [k for k in keys if all(k is not v for v in verified)]
            # The hint only orders the attempts; every remaining key is tried.
            remaining.sort(key=lambda k: k.keyid != signature.keyid)
        for key in remaining:
            if key.check(signature.sig, data):
                verified.append(key)
                break
        if len(verified) >= threshold:
            return tuple(verified)
    n = len(envelope.signatures)
    raise VerificationError(
        f"{len(verified)} of {threshold} required trusted key(s) verified the envelope "
        f"({n} signature(s), {len(keys)} trusted key(s))",
        detail={"verified_keys": [k.keyid for k in verified], "threshold": threshold},
    )
