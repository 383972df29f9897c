# SPDX-License-Identifier: Apache-2.0
"""Keyless issuance end to end: the server signs layers with Fulcio + Rekor
(the local @sigstore/mock stack), stores each bundle and serves it verbatim."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.errors import VerificationError
from attestor.jobs.runner import InlineRunner
from attestor.keyless import signing_certificate_pem
from attestor.services.signers import keyless_keyid
from attestor.verify import TrustedKey, Verifier
from attestor.verify.bundle import Artifact, CertificateIdentity, verify_bundle
from attestor.verify.trust import load_trusted_root
from tests.conftest import REPO_ROOT
from tests.harness.sigstore_stack import SigstoreStack
from tests.integration.issuance._images import Pushed, client_for, push
from tests.integration.issuance.conftest import Server, _bearer

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def keyless_server(
    tmp_path_factory: pytest.TempPathFactory, registry: Any, sigstore_stack: SigstoreStack
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("keyless-server")
    policies = root / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    token = root / "token"
    token.write_text(sigstore_stack.mint_token(IDENTITY, ISSUER))
    settings = load_settings(
        {
            "ATTESTOR_DATA_DIR": str(root / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
            "ATTESTOR_SIGNING_MODE": "keyless",
            "ATTESTOR_KEYLESS_INSTANCE": "custom",
            "ATTESTOR_KEYLESS_TRUST_CONFIG": str(sigstore_stack.client_trust_config_path),
            "ATTESTOR_KEYLESS_TOKEN_FILE": str(token),
            # The mock has no Rekor v2.
            "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "1",
        }
    )
    app = create_app(settings, overrides={"TESTING": True})
    yield Server(
        app=app,
        client=app.test_client(),
        admin=_bearer(app, "admin"),
        pipeline=_bearer(app, "pipeline"),
        agent=_bearer(app, "agent"),
    )
    state = app_state(app)
    if isinstance(state.runner, InlineRunner):
        state.runner.shutdown()
    state.engine.dispose()


@pytest.fixture(scope="module")
def image(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    pusher = client_for(registry.host, tmp_path_factory.mktemp("push"))
    return push(pusher, f"{registry.host}/keyless/app", "v1", layers=2)


@pytest.fixture(scope="module")
def issued(keyless_server: Server, image: Pushed) -> dict[str, Any]:
    response = keyless_server.issue(image.by_tag)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _verify(stack: SigstoreStack, bundle: bytes, layer: str, identity: str = IDENTITY) -> Any:
    return verify_bundle(
        bundle,
        Artifact.from_digest(layer),
        trust=load_trusted_root(stack.trusted_root_path),
        now=datetime.now(UTC),
        identity=CertificateIdentity(identity, ISSUER),
    )


def test_each_stored_bundle_verifies_with_identity_and_issuer(
    keyless_server: Server, issued: dict[str, Any], image: Pushed, sigstore_stack: SigstoreStack
) -> None:
    assert [a["layer"]["digest"] for a in issued["attestations"]] == list(image.layer_digests)
    for summary in issued["attestations"]:
        response = keyless_server.get(summary["bundle_url"])
        assert response.status_code == 200
        assert response.mimetype == "application/vnd.dev.sigstore.bundle.v0.3+json"
        bundle = json.loads(response.data)
        # The stored keyless bundle, not a public-key-hint bundle built from the envelope.
        assert "certificate" in bundle["verificationMaterial"]
        assert "publicKey" not in bundle["verificationMaterial"]
        assert len(bundle["verificationMaterial"]["tlogEntries"]) == 1
        result = _verify(sigstore_stack, response.data, summary["layer"]["digest"])
        assert (result.signer, result.identity, result.issuer) == ("keyless", IDENTITY, ISSUER)
        assert result.predicate_type == "https://slsa.dev/provenance/v1"
        with pytest.raises(VerificationError):
            _verify(sigstore_stack, response.data, summary["layer"]["digest"], "someone-else")


def test_envelope_alone_verifies_with_the_certificate_key(
    keyless_server: Server, issued: dict[str, Any]
) -> None:
    for summary in issued["attestations"]:
        envelope = keyless_server.get(summary["envelope_url"]).data
        bundle = json.loads(keyless_server.get(summary["bundle_url"]).data)
        # cosign's keyless envelope: same payload and signature, empty keyid.
        doc = json.loads(envelope)
        assert [s["keyid"] for s in doc["signatures"]] == [""]
        assert doc["payload"] == bundle["dsseEnvelope"]["payload"]
        cert = x509.load_pem_x509_certificate(signing_certificate_pem(bundle))
        pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        verified = Verifier(keys=[TrustedKey.from_pem(pem)]).verify_envelope(
            envelope, artifact_digest=summary["layer"]["digest"]
        )
        assert verified.matched_subject is not None
        # The envelope names this layer as its subject.
        statement = json.loads(base64.b64decode(doc["payload"]))
        assert statement["subject"][0]["digest"]["sha256"] == summary["layer"]["digest"][7:]


def test_detail_names_the_signer_and_the_chain_links_layers(
    keyless_server: Server, issued: dict[str, Any]
) -> None:
    keyid = keyless_keyid(ISSUER, IDENTITY)
    first, second = (
        keyless_server.get(f"/v1/attestations/{a['id']}").get_json() for a in issued["attestations"]
    )
    for detail in (first, second):
        assert detail["keyid"] == keyid
        assert detail["signer"] == {"identity": IDENTITY, "issuer": ISSUER}
    assert second["parent_id"] == first["id"]
    # The pseudo key row is not a key: agents and bulk verification never see it.
    keys = keyless_server.get("/v1/keys", keyless_server.admin).get_json()["keys"]
    assert keyid not in {k["keyid"] for k in keys}


def test_attached_att_layers_carry_cosigns_keyless_annotations(
    keyless_server: Server, issued: dict[str, Any], image: Pushed, registry: Any
) -> None:
    response = keyless_server.client.post(
        "/v1/attestations",
        json={"image": image.by_tag, "attach": True},
        headers=keyless_server.pipeline,
    )
    assert response.status_code == 200, response.get_json()
    tag = response.get_json()["attached"]["cosign_tag"]
    repository = image.name.split("/", 1)[1]
    att = requests.get(
        f"http://{registry.host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    assert len(att["layers"]) == 2
    for layer, summary in zip(att["layers"], issued["attestations"], strict=True):
        bundle = json.loads(keyless_server.get(summary["bundle_url"]).data)
        annotations = layer["annotations"]
        leaf = x509.load_pem_x509_certificate(
            annotations["dev.sigstore.cosign/certificate"].encode()
        )
        raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
        assert leaf.public_bytes(serialization.Encoding.DER) == raw
        assert annotations["dev.sigstore.cosign/chain"] == ""
        rekor = json.loads(annotations["dev.sigstore.cosign/bundle"])
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        assert rekor["Payload"]["logIndex"] == int(entry["logIndex"])


def test_idempotent_then_revoking_the_identity_stops_issuance(
    keyless_server: Server, issued: dict[str, Any], image: Pushed
) -> None:
    again = keyless_server.issue(image.by_digest)
    assert again.status_code == 200
    assert [a["id"] for a in again.get_json()["attestations"]] == [
        a["id"] for a in issued["attestations"]
    ]
    keyid = keyless_keyid(ISSUER, IDENTITY)
    revoked = keyless_server.client.post(
        f"/v1/keys/{keyid}/revoke", json={"reason": "token leaked"}, headers=keyless_server.admin
    )
    assert revoked.status_code == 200, revoked.get_json()
    assert revoked.get_json()["status"] == "revoked"
    for summary in issued["attestations"]:
        assert (
            keyless_server.get(f"/v1/attestations/{summary['id']}").get_json()["status"]
            == "revoked"
        )
    refused = keyless_server.issue(image.by_tag)
    assert refused.status_code == 409
    assert refused.get_json()["reason"] == "identity-revoked"
