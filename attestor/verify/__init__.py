# SPDX-License-Identifier: Apache-2.0
"""THE verification core: DSSE envelopes (and, via ``bundle``, Sigstore bundles).

Bytes go in, a typed verified object comes out, or ``VerificationError`` is
raised with a precise reason. The server, workers, agent and CLI all use it.
A revoked attestation raises ``VerificationError("revoked: <reason>")`` with
``detail["revoked"] is True``.
"""

from attestor.verify._verifier import Verifier
from attestor.verify.keys import TrustedKey
from attestor.verify.result import Subject, VerifiedStatement
from attestor.verify.revocation import attestation_metas, raise_if_revoked

__all__ = [
    "Subject",
    "TrustedKey",
    "VerifiedStatement",
    "Verifier",
    "attestation_metas",
    "raise_if_revoked",
]
