# SPDX-License-Identifier: Apache-2.0
"""Keyless bundles in bulk: verified against the signer our row names (keyless mode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attestor.api._state import app_state
from attestor.jobs.runner import InlineRunner
from tests.harness.sigstore_stack import SigstoreStack
from tests.integration.bulk._issuing import bearer, issuing_app
from tests.integration.bulk.test_bundles import _results
from tests.integration.issuance._images import client_for, push

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"

pytestmark = pytest.mark.timeout(120)


def test_keyless_bundles_verify_in_keyless_mode(
    tmp_path: Path,
    registry: Any,
    sigstore_stack: SigstoreStack,
) -> None:
    token = tmp_path / "token"
    token.write_text(sigstore_stack.mint_token(IDENTITY, ISSUER))
    app = issuing_app(
        tmp_path / "srv",
        registry,
        {
            "ATTESTOR_SIGNING_MODE": "keyless",
            "ATTESTOR_KEYLESS_INSTANCE": "custom",
            "ATTESTOR_KEYLESS_TRUST_CONFIG": str(sigstore_stack.client_trust_config_path),
            "ATTESTOR_KEYLESS_TOKEN_FILE": str(token),
            "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "1",
        },
    )
    try:
        pushed = push(client_for(registry.host, tmp_path / "push"), f"{registry.host}/bulk/k", "v1")
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
        assert "publicKey" not in bundles[0]["verificationMaterial"]
        items = [
            {"bundle": bundles[0], "artifact_digest": layers[0]},
            {"bundle": bundles[1], "artifact_digest": layers[1]},
            {"bundle": bundles[0], "artifact_digest": layers[1]},
        ]

        results = _results(client, headers, items, app)

        assert [r["status"] for r in results] == ["verified", "verified", "rejected"]
        assert [r["attestation_id"] for r in results] == [a["id"] for a in attestations] + [
            attestations[0]["id"]
        ]
        assert results[2]["reason"]
    finally:
        runner = app_state(app).runner
        if isinstance(runner, InlineRunner):
            runner.shutdown()
        app_state(app).engine.dispose()
