# SPDX-License-Identifier: Apache-2.0
"""Bulk verification of the Sigstore bundles that issuance serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from attestor.api._state import app_state
from attestor.jobs.runner import InlineRunner
from tests.integration.bulk._issuing import bearer, issuing_app
from tests.integration.issuance._images import client_for, push


def _results(client: FlaskClient, headers: dict[str, str], items: list[Any], app: Any) -> Any:
    response = client.post("/v1/verifications", json={"items": items}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    runner = app_state(app).runner
    assert isinstance(runner, InlineRunner)
    runner.wait(timeout=30)
    assert client.get(job["url"], headers=headers).get_json()["status"] == "finished"
    return client.get(f"{job['url']}/results", headers=headers).get_json()["items"]


def test_key_bundles_from_issuance_verify_like_envelopes(tmp_path: Path, registry: Any) -> None:
    app = issuing_app(tmp_path / "srv", registry)
    try:
        pushed = push(client_for(registry.host, tmp_path / "push"), f"{registry.host}/bulk/b", "v1")
        headers = bearer(app, "admin")
        client = app.test_client()
        issued = client.post("/v1/attestations", json={"image": pushed.by_tag}, headers=headers)
        assert issued.status_code == 201, issued.get_data(as_text=True)
        attestations = issued.get_json()["attestations"]
        bundles = [
            json.loads(client.get(a["bundle_url"], headers=headers).get_data())
            for a in attestations
        ]
        layers = [a["layer"]["digest"] for a in attestations]
        assert bundles[0]["verificationMaterial"]["publicKey"]["hint"] == attestations[0]["keyid"]
        tampered = json.loads(json.dumps(bundles[1]))
        sig = tampered["dsseEnvelope"]["signatures"][0]["sig"]
        tampered["dsseEnvelope"]["signatures"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
        keyless = json.loads(json.dumps(bundles[0]))
        del keyless["verificationMaterial"]["publicKey"]
        keyless["verificationMaterial"]["x509CertificateChain"] = {"certificates": []}
        unhinted = json.loads(json.dumps(bundles[1]))
        unhinted["verificationMaterial"]["publicKey"]["hint"] = "unknown"
        items = [
            {"bundle": bundles[0], "artifact_digest": layers[0]},
            {"bundle": bundles[1], "artifact_digest": layers[1], "policy": "dev"},
            {"bundle": bundles[0], "artifact_digest": layers[1]},
            {"bundle": tampered, "artifact_digest": layers[1]},
            {"bundle": keyless, "artifact_digest": layers[0]},
            {"bundle": unhinted, "artifact_digest": layers[1]},
        ]

        results = _results(client, headers, items, app)

        assert [r["status"] for r in results] == ["verified", "verified"] + ["rejected"] * 3 + [
            "verified"
        ]
        assert [r["attestation_id"] for r in results[:2]] == [a["id"] for a in attestations]
        assert results[5]["attestation_id"] == attestations[1]["id"]
        assert "keyless" in results[4]["reason"]
        assert results[2]["reason"] and results[3]["reason"]

        revoked = client.post(
            "/v1/revocations",
            json={
                "target": {"kind": "attestation", "attestation_id": attestations[0]["id"]},
                "reason": "bad build",
            },
            headers=headers,
        )
        assert revoked.status_code == 201, revoked.get_data(as_text=True)
        [after] = _results(client, headers, items[:1], app)
        assert (after["status"], after["revoked"]) == ("rejected", True)
        assert after["attestation_id"] == attestations[0]["id"]
    finally:
        runner = app_state(app).runner
        if isinstance(runner, InlineRunner):
            runner.shutdown()
        app_state(app).engine.dispose()
