# SPDX-License-Identifier: Apache-2.0
"""``GET /v1/attestations/{id}/bundle``: the Sigstore bundle of a keyless attestation.

The bytes are NOT trusted here: the caller verifies them with
:class:`attestor.verify.bundle.BundleVerifier` against trust pinned on the node.
"""

from __future__ import annotations

from urllib.parse import quote

from agent.server._client import ServerClient

__all__ = ["fetch_bundle"]


def fetch_bundle(client: ServerClient, attestation_id: str) -> bytes:
    """The Sigstore bundle JSON bytes of ``attestation_id`` (unverified).

    Raises:
        NotFound: no such attestation, or it has no bundle.
        Unavailable: the server is unreachable.
        UpstreamError: the answer is over the cap.
    """
    path = f"/v1/attestations/{quote(attestation_id, safe='')}/bundle"
    # The same transport settings and cap as the envelope call.
    return client.request("GET", path, cap=client.limits.max_envelope_bytes)[1]
