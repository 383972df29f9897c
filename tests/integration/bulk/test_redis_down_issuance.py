# SPDX-License-Identifier: Apache-2.0
"""Redis unreachable: issuance still signs (in the request); bulk answers 503."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from attestor.api._state import app_state
from attestor.store import jobs as job_store
from tests.integration.bulk._issuing import bearer, issuing_app
from tests.integration.issuance._images import client_for, push


def _dead_redis_url() -> str:
    # A port nothing listens on: like a stopped Redis, connections are refused.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_issuance_runs_in_the_request_when_the_queue_is_down(tmp_path: Path, registry: Any) -> None:
    app = issuing_app(
        tmp_path / "srv",
        registry,
        # Threshold 1 byte: every uncached image would be deferred to the queue.
        {"REDIS_URL": _dead_redis_url(), "ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "1"},
    )
    try:
        pushed = push(client_for(registry.host, tmp_path / "push"), f"{registry.host}/bulk/r", "v1")
        headers = bearer(app, "pipeline")
        client = app.test_client()

        issued = client.post("/v1/attestations", json={"image": pushed.by_tag}, headers=headers)

        assert issued.status_code == 201, issued.get_data(as_text=True)
        body = issued.get_json()
        assert body["image"]["digest"] == pushed.manifest_digest
        assert [a["layer"]["digest"] for a in body["attestations"]] == list(pushed.layer_digests)
        listed = client.get(
            f"/v1/attestations?image_digest={pushed.manifest_digest}", headers=headers
        )
        assert listed.status_code == 200
        assert len(listed.get_json()["items"]) == 2

        bulk = client.post(
            "/v1/verifications",
            json={"items": [{"envelope": {}, "artifact_digest": pushed.layer_digests[0]}]},
            headers=headers,
        )
        assert bulk.status_code == 503
        assert int(bulk.headers["Retry-After"]) > 0
        with app_state(app).session_factory() as session:
            # The issue job that could not be queued, and the bulk job.
            assert job_store.count_jobs(session, statuses=("failed",)) == 2
    finally:
        app_state(app).engine.dispose()
