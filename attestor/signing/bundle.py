# SPDX-License-Identifier: Apache-2.0
"""Sigstore bundle v0.3 for a key-signed DSSE envelope ("managed key" bundle).

Field names follow the protobuf-JSON mapping of
``dev.sigstore.bundle.v1.Bundle`` (sigstore/protobuf-specs): lowerCamelCase,
``bytes`` as standard base64. ``@sigstore/bundle`` (``bundleFromJSON``) and
sigstore-python's models parse exactly these names.
"""

from __future__ import annotations

import base64
from typing import Any

from attestor.dsse import Envelope

__all__ = ["BUNDLE_V03_MEDIA_TYPE", "bundle_from_envelope"]

BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def bundle_from_envelope(envelope: Envelope, *, keyid: str) -> dict[str, Any]:
    """A v0.3 bundle whose verification material is the hint of a public key.

    No transparency-log entries: verifiers must be told to require none (cosign's
    ``--insecure-ignore-tlog``, sigstore-js ``tlogThreshold: 0``).
    """
    return {
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": keyid},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(envelope.payload).decode("ascii"),
            "payloadType": envelope.payload_type,
            "signatures": [
                {"sig": base64.b64encode(s.sig).decode("ascii"), "keyid": s.keyid}
                for s in envelope.signatures
            ],
        },
    }
