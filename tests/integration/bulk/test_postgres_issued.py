# SPDX-License-Identifier: Apache-2.0
"""Bulk verification of issued envelopes on PostgreSQL (= ANY lookup, array upsert)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attestor.api._state import app_state
from attestor.dsse import parse_envelope
from attestor.jobs.runner import InlineRunner
from attestor.store import verifications as results_store
from tests.integration.bulk._issuing import bearer, issuing_app
from tests.integration.issuance._images import client_for, push


def test_issued_envelopes_verify_in_bulk_on_postgres(
    tmp_path: Path, registry: Any, database_url: str
) -> None:
    app = issuing_app(tmp_path / "srv", registry, {"DATABASE_URL": database_url})
    try:
        pushed = push(
            client_for(registry.host, tmp_path / "push"), f"{registry.host}/bulk/pg", "v1"
        )
        headers = bearer(app, "admin")
        client = app.test_client()
        issued = client.post("/v1/attestations", json={"image": pushed.by_tag}, headers=headers)
        assert issued.status_code == 201, issued.get_data(as_text=True)
        attestations = issued.get_json()["attestations"]
        envelopes = [
            json.loads(client.get(a["envelope_url"], headers=headers).get_data())
            for a in attestations
        ]
        layers = [a["layer"]["digest"] for a in attestations]
        items = [
            {"envelope": envelope, "artifact_digest": layer}
            for envelope, layer in zip(envelopes, layers, strict=True)
        ]
        # A wrong subject, then the first item again (deduplicated).
        items += [{"envelope": envelopes[0], "artifact_digest": layers[-1]}, items[0]]

        response = client.post("/v1/verifications", json={"items": items}, headers=headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        job = response.get_json()["job"]
        runner = app_state(app).runner
        assert isinstance(runner, InlineRunner)
        runner.wait(timeout=30)
        results = client.get(f"{job['url']}/results", headers=headers).get_json()["items"]

        n = len(attestations)
        assert [r["index"] for r in results] == list(range(n + 2))
        assert [r["status"] for r in results] == ["verified"] * n + ["rejected", "verified"]
        assert [r["attestation_id"] for r in results[:n]] == [a["id"] for a in attestations]
        assert results[n + 1]["attestation_id"] == attestations[0]["id"]
        assert "no subject has sha256" in results[n]["reason"]
        assert results[n]["revoked"] is False
        with app_state(app).session_factory() as session:
            found = results_store.find_attestations(
                session,
                [parse_envelope(e).pae_sha256() for e in envelopes] + ["0" * 64],
            )
        assert sorted(f.id for f in found.values()) == sorted(a["id"] for a in attestations)
    finally:
        app_state(app).engine.dispose()
