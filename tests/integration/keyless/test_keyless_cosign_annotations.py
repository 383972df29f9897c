# SPDX-License-Identifier: Apache-2.0
"""The ``.att`` layer of a keyless attestation carries what cosign reads (pkg/oci/static)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.sign import SigningContext

from attestor.keyless import load_trust_config, sign_dsse_bundle
from attestor.registry import attach_docs as docs
from tests.harness.sigstore_stack import SigstoreStack

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"
STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "layer", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.test/p",
        "predicate": {},
    }
).encode()


@pytest.fixture(scope="module")
def bundle(sigstore_stack: SigstoreStack) -> dict[str, Any]:
    trust = load_trust_config("custom", sigstore_stack.client_trust_config_path)
    trust.force_tlog_version = 1  # the mock has no Rekor v2
    context = SigningContext.from_trust_config(trust)
    return sign_dsse_bundle(context, sigstore_stack.mint_token(IDENTITY, ISSUER), STATEMENT)


def _rekor_key(stack: SigstoreStack) -> ec.EllipticCurvePublicKey:
    root = json.loads(stack.trusted_root_path.read_text())
    der = base64.b64decode(root["tlogs"][0]["publicKey"]["rawBytes"])
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_keyless_layer_has_certificate_chain_and_a_verifiable_rekor_bundle(
    sigstore_stack: SigstoreStack, bundle: dict[str, Any]
) -> None:
    envelope = json.dumps(bundle["dsseEnvelope"]).encode()
    layer = docs.cosign_layer(envelope, "https://example.test/p", bundle)
    annotations = layer["annotations"]

    assert list(annotations) == sorted(annotations)  # Go's map order
    assert annotations[docs.COSIGN_SIGNATURE_ANNOTATION] == ""
    cert = x509.load_pem_x509_certificate(annotations[docs.CERTIFICATE_ANNOTATION].encode())
    raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    assert cert.public_bytes(serialization.Encoding.DER) == raw
    # A v0.3 bundle has only the leaf: cosign then chains to its trusted root.
    assert annotations[docs.CHAIN_ANNOTATION] == ""

    rekor = json.loads(annotations[docs.REKOR_BUNDLE_ANNOTATION])
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    payload = rekor["Payload"]
    assert payload["logIndex"] == int(entry["logIndex"])
    assert payload["integratedTime"] == int(entry["integratedTime"])
    assert bytes.fromhex(payload["logID"]) == base64.b64decode(entry["logId"]["keyId"])
    # What cosign's VerifySET checks: Rekor's signature over the canonical payload JSON.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    _rekor_key(sigstore_stack).verify(
        base64.b64decode(rekor["SignedEntryTimestamp"]), canonical, ec.ECDSA(hashes.SHA256())
    )
    body = json.loads(base64.b64decode(payload["body"]))
    assert body["kind"] == "dsse"


def test_key_signed_layer_has_no_keyless_annotations() -> None:
    key_bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "k1"}},
    }
    layer = docs.cosign_layer(b"{}", "https://example.test/p", key_bundle)
    assert set(layer["annotations"]) == {
        docs.COSIGN_SIGNATURE_ANNOTATION,
        docs.PREDICATE_TYPE_ANNOTATION,
    }
