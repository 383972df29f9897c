# SPDX-License-Identifier: Apache-2.0
"""Issuance through the real HTTP app against the real registry and the sample image."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.manifest import MEDIA_TYPE, FileManifest
from attestor.registry import RegistryClient
from attestor.statement import validate_statement
from attestor.verify import TrustedKey, Verifier
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server


def _statement(envelope: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(envelope["payload"]))


def test_issue_sample_image_end_to_end(server: Server, sample_image: Any) -> None:
    before = server.counts()
    response = server.issue(sample_image.by_tag)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["image"] == {
        "reference": sample_image.by_tag,
        "digest": sample_image.manifest_digest,
        "tag": sample_image.tag,
    }
    layers = sample_image.layers
    items = body["attestations"]
    assert [a["layer"]["index"] for a in items] == list(range(len(layers)))
    assert [a["layer"]["digest"] for a in items] == [layer.digest for layer in layers]
    assert [a["layer"]["diff_id"] for a in items] == list(sample_image.image.diff_ids)
    assert server.counts() == (before[0] + 1, before[1] + len(layers), before[2] + len(layers))

    key = server.active_key()
    verifier = Verifier(keys=[TrustedKey.from_pem(key["public_key_pem"], key["keyid"])])
    config = json.loads(sample_image.image.config_bytes)
    layered_history = [h for h in config["history"] if not h.get("empty_layer")]
    name = f"{sample_image.host}/{sample_image.repo}"
    previous: tuple[str, str] | None = None  # (chainID, envelope sha256) of the layer below
    for index, (item, layer) in enumerate(zip(items, layers, strict=True)):
        assert item["status"] == "valid"
        raw = server.get(item["envelope_url"])
        assert raw.status_code == 200 and raw.mimetype == "application/json"
        envelope_bytes = raw.get_data()
        envelope = json.loads(envelope_bytes)
        assert set(envelope) == {"payloadType", "payload", "signatures"}
        assert envelope["signatures"][0]["keyid"] == key["keyid"]
        verified = verifier.verify_envelope(envelope_bytes, artifact_digest=layer.digest)
        statement = _statement(envelope)
        validate_statement(statement)
        assert verified.statement == statement
        assert statement["subject"] == [
            {"name": f"{name}@{layer.digest}", "digest": {"sha256": layer.digest[7:]}}
        ]
        build = statement["predicate"]["buildDefinition"]
        params = build["externalParameters"]
        assert params["layer"]["index"] == index
        assert params["image"]["manifestDigest"] == sample_image.manifest_digest
        want_history = {
            k: layered_history[index][k]
            for k in ("created", "created_by", "comment")
            if k in layered_history[index]
        }
        assert params["history"] == want_history
        assert build["internalParameters"]["policy"] == {"id": "dev", "version": "1"}
        deps = {d["name"]: d for d in build["resolvedDependencies"]}
        byproducts = {b["name"]: b for b in statement["predicate"]["runDetails"]["byproducts"]}
        assert byproducts["diffID"]["digest"]["sha256"] == layer.diff_id[7:]
        chain_id = "sha256:" + byproducts["chainID"]["digest"]["sha256"]
        # The attestation chain: each parent is the envelope served for the layer below.
        if previous is None:
            assert "parent-layer-attestation" not in deps
            assert chain_id == layer.diff_id
        else:
            parent = deps["parent-layer-attestation"]
            assert parent["annotations"]["chainID"] == previous[0]
            assert parent["digest"]["sha256"] == previous[1]
        previous = (chain_id, hashlib.sha256(envelope_bytes).hexdigest())

        meta = server.get(f"/v1/attestations/{item['id']}").get_json()
        assert meta["chain_id"] == chain_id
        assert meta["envelope_sha256"] == previous[1]
        assert meta["keyid"] == key["keyid"]
        assert meta["parent_id"] == (items[index - 1]["id"] if index else None)

        manifest = server.get(item["manifest"]["url"], server.agent)
        assert manifest.status_code == 200 and manifest.mimetype == MEDIA_TYPE
        assert (
            "sha256:" + hashlib.sha256(manifest.get_data()).hexdigest()
            == item["manifest"]["sha256"]
        )
        parsed = FileManifest.from_canonical_bytes(manifest.get_data())
        assert parsed.tree_digest == item["manifest"]["tree_digest"]
        assert byproducts["layer-manifest"]["digest"]["sha256"] == item["manifest"]["sha256"][7:]

        bundle_response = server.get(item["bundle_url"])
        assert bundle_response.mimetype == "application/vnd.dev.sigstore.bundle.v0.3+json"
        bundle = bundle_response.get_json()
        assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert bundle["verificationMaterial"]["publicKey"]["hint"] == key["keyid"]
        assert bundle["dsseEnvelope"]["payload"] == envelope["payload"]
        assert bundle["dsseEnvelope"]["signatures"][0]["sig"] == envelope["signatures"][0]["sig"]


def test_second_request_is_idempotent(server: Server, sample_image: Any) -> None:
    first = server.issue(sample_image.by_tag)
    assert first.status_code == 201
    counts = server.counts()
    by_digest = server.issue(sample_image.by_digest, server.agent)
    by_tag = server.issue(sample_image.by_tag, server.admin)
    assert by_digest.status_code == 200 and by_tag.status_code == 200
    ids = [a["id"] for a in first.get_json()["attestations"]]
    assert [a["id"] for a in by_digest.get_json()["attestations"]] == ids
    assert [a["id"] for a in by_tag.get_json()["attestations"]] == ids
    assert server.counts() == counts
    metrics = server.client.get("/metrics").get_data(as_text=True)
    assert f"attestor_attestations_issued_total {float(len(ids))}" in metrics


def test_attach_pushes_existing_attestations_to_the_registry(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str], registry: Any
) -> None:
    # A fresh image: attaching writes tags into its repository.
    image = push(pusher, unique_name("attach"), "v1", layers=2)
    first = server.issue(image.by_tag).get_json()
    response = server.client.post(
        "/v1/attestations", json={"image": image.by_digest, "attach": True}, headers=server.admin
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [a["id"] for a in body["attestations"]] == [a["id"] for a in first["attestations"]]
    attached = body["attached"]
    assert attached["cosign_tag"] == f"sha256-{image.manifest_digest[7:]}.att"
    assert len(attached["referrers"]) == 2
    repository = image.name.split("/", 1)[1]
    cosign = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{attached['cosign_tag']}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=5,
    ).json()
    envelopes = {
        hashlib.sha256(server.get(a["envelope_url"]).get_data()).hexdigest()
        for a in first["attestations"]
    }
    assert {layer["digest"][7:] for layer in cosign["layers"]} == envelopes


def test_pagination_and_filters(server: Server, sample_image: Any) -> None:
    ids = {a["id"] for a in server.issue(sample_image.by_tag).get_json()["attestations"]}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = "/v1/attestations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = server.get(url).get_json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and pages == -(-len(ids) // 2)
    layer = sample_image.layers[1].digest
    only = server.get(f"/v1/attestations?layer_digest={layer}&status=valid").get_json()
    assert [i["layer"]["digest"] for i in only["items"]] == [layer]
    by_image = server.get(f"/v1/attestations?image_digest={sample_image.manifest_digest}")
    assert len(by_image.get_json()["items"]) == len(ids)
    assert server.get("/v1/attestations?status=revoked").get_json() == {"items": [], "next": None}
    bad = server.get("/v1/attestations?cursor=bm90LWEtY3Vyc29y")
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"


def test_rotated_key_issues_new_attestations_and_revocation_stops_issuance(
    server: Server, sample_image: Any
) -> None:
    old_ids = [a["id"] for a in server.issue(sample_image.by_tag).get_json()["attestations"]]
    old_key = server.active_key()
    rotated = server.client.post(
        "/v1/keys/rotate", json={"algorithm": "ed25519"}, headers=server.admin
    )
    assert rotated.status_code == 201
    new_key = rotated.get_json()
    assert new_key["status"] == "active" and new_key["algorithm"] == "ed25519"
    statuses = {k["keyid"]: k["status"] for k in server.get("/v1/keys").get_json()["keys"]}
    assert statuses[old_key["keyid"]] == "retired"

    again = server.issue(sample_image.by_tag)
    assert again.status_code == 201
    new_ids = [a["id"] for a in again.get_json()["attestations"]]
    assert not set(new_ids) & set(old_ids)
    envelope = server.get(f"/v1/attestations/{new_ids[0]}/envelope").get_data()
    Verifier(keys=[TrustedKey.from_pem(new_key["public_key_pem"])]).verify_envelope(envelope)
    # The retired key's attestations stay valid and verifiable.
    assert server.get(f"/v1/attestations/{old_ids[0]}").get_json()["status"] == "valid"

    revoked = server.client.post(
        f"/v1/keys/{new_key['keyid']}/revoke", json={"reason": "test"}, headers=server.admin
    )
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert server.get(f"/v1/attestations/{new_ids[0]}").get_json()["status"] == "revoked"
    counts = server.counts()
    refused = server.issue(sample_image.by_tag)
    assert refused.status_code == 409, refused.get_json()
    assert refused.mimetype == "application/problem+json"
    assert "rotate" in refused.get_json()["detail"]
    assert server.counts() == counts
    assert server.client.post("/v1/keys/rotate", json={}, headers=server.admin).status_code == 201
    assert server.issue(sample_image.by_tag).status_code == 201


def test_key_responses_never_carry_private_material(server: Server) -> None:
    created = server.client.post("/v1/keys", json={"algorithm": "ed25519"}, headers=server.admin)
    assert created.status_code == 201 and created.get_json()["status"] == "retired"
    listing = server.get("/v1/keys", server.agent)
    text = listing.get_data(as_text=True) + created.get_data(as_text=True)
    assert "PRIVATE" not in text and "file:" not in text and "signer" not in text
    keys_dir = server.app.extensions["attestor"].settings.keys_dir
    for pem in keys_dir.glob("*.pem"):
        assert pem.stat().st_mode & 0o777 == 0o600
    assert (
        server.client.post(
            "/v1/keys", json={"algorithm": "ed25519"}, headers=server.pipeline
        ).status_code
        == 403
    )


def test_imported_key_can_be_activated_and_signs(server: Server, sample_image: Any) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    imported = server.client.post(
        "/v1/keys", json={"private_key_pem": pem, "activate": True}, headers=server.admin
    )
    assert imported.status_code == 201, imported.get_json()
    key = imported.get_json()
    assert key["status"] == "active" and key["algorithm"] == "ecdsa-p256"
    assert "private_key_pem" not in key and "PRIVATE" not in imported.get_data(as_text=True)
    again = server.client.post("/v1/keys", json={"private_key_pem": pem}, headers=server.admin)
    assert again.status_code == 409
    both = server.client.post(
        "/v1/keys", json={"private_key_pem": pem, "algorithm": "ed25519"}, headers=server.admin
    )
    assert both.status_code == 422
    item = server.issue(sample_image.by_tag).get_json()["attestations"][0]
    envelope = server.get(item["envelope_url"]).get_data()
    verified = Verifier(keys=[TrustedKey.from_pem(key["public_key_pem"])]).verify_envelope(envelope)
    assert verified.keys == (key["keyid"],)
