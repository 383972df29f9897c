# SPDX-License-Identifier: Apache-2.0
"""/v1/reports: the latest report per container, finalized ones kept, admin reads."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.unit.api.conftest import bearer, create_token

IMAGE = "sha256:" + "a" * 64
LAYER = "sha256:" + "b" * 64


def report(generated_at: str, *, finalized: bool = False, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "attestor.dev/v1alpha1",
        "kind": "ContainerReport",
        "container_id": "ctr-1",
        "namespace": "default",
        "image": {"name": "127.0.0.1:5000/app:1", "digest": IMAGE},
        "layers": [
            {
                "index": 0,
                "digest": LAYER,
                "diff_id": "sha256:" + "c" * 64,
                "chain_id": "sha256:" + "c" * 64,
                "attestation_id": str(uuid.uuid4()),
                "keyid": "k1",
                "status": "valid",
            }
        ],
        "history": [
            {
                "checked_at": generated_at,
                "scope": "layer",
                "layer_digest": LAYER,
                "result": "clean",
                "files_checked": 10,
                "violations": 0,
                "full_rehash": True,
            }
        ],
        "anomalies": [],
        "finalized": finalized,
        "generated_at": generated_at,
    }
    doc.update(changes)
    return doc


def submit(client: FlaskClient, token: str, doc: dict[str, Any]) -> Any:
    return client.post("/v1/reports", json=doc, headers=bearer(token))


def items(client: FlaskClient, token: str, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/v1/reports{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    found: list[dict[str, Any]] = response.get_json()["items"]
    return found


def test_latest_replaces_and_finalized_is_kept(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    agent, admin = role_tokens["agent"], role_tokens["admin"]
    first = submit(client, agent, report("2026-05-06T07:00:00Z"))
    assert first.status_code == 202, first.get_json()
    latest_id = first.get_json()["id"]
    second = submit(client, agent, report("2026-05-06T07:01:00Z"))
    assert second.get_json()["id"] == latest_id  # replaced in place
    listed = items(client, admin)
    assert len(listed) == 1
    assert listed[0]["generated_at"].startswith("2026-05-06T07:01:00")
    assert listed[0]["image"] == {"name": "127.0.0.1:5000/app:1", "digest": IMAGE}
    assert listed[0]["agent_id"] == "node-1"

    # An older report arriving late does not replace the newer one.
    late = submit(client, agent, report("2026-05-06T06:59:00Z"))
    assert late.status_code == 202
    assert items(client, admin)[0]["generated_at"].startswith("2026-05-06T07:01:00")

    final = submit(client, agent, report("2026-05-06T07:02:00Z", finalized=True))
    final_id = final.get_json()["id"]
    # Replaying the finalized report stores nothing new.
    assert submit(client, agent, report("2026-05-06T07:02:00Z", finalized=True)).get_json() == {
        "id": final_id
    }
    listed = items(client, admin)
    assert [(r["id"], r["finalized"]) for r in listed] == [(final_id, True)]
    # A late change report after the finalized one is ignored.
    submit(client, agent, report("2026-05-06T07:01:30Z"))
    assert [r["id"] for r in items(client, admin)] == [final_id]


def test_get_report_returns_the_document_as_sent(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    doc = report("2026-05-06T07:00:00.123456+00:00", finalized=True)
    report_id = submit(client, role_tokens["agent"], doc).get_json()["id"]
    response = client.get(f"/v1/reports/{report_id}", headers=bearer(role_tokens["admin"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["report"] == doc
    assert body["finalized"] is True
    missing = client.get(f"/v1/reports/{uuid.uuid4()}", headers=bearer(role_tokens["admin"]))
    assert missing.status_code == 404


def test_invalid_report_is_422_and_not_stored(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    bad_layer = report("2026-05-06T07:00:00Z")
    bad_layer["layers"][0]["status"] = "fine"
    for doc in (
        bad_layer,
        report("2026-05-06T07:00:00Z", apiVersion="v2"),
        report("2026-05-06T07:00:00Z", image={"name": "x", "digest": "md5:00"}),
        {"container_id": "ctr-1"},
        report("2026-05-06T07:00:00Z", container_id="c\x00"),
    ):
        response = submit(client, role_tokens["agent"], doc)
        assert response.status_code == 422, doc
        assert response.mimetype == "application/problem+json"
    assert items(client, role_tokens["admin"]) == []


def test_filters_and_pages(app: Flask, client: FlaskClient, role_tokens: dict[str, str]) -> None:
    other, _ = create_token(app, "agent", "node-2")
    for i in range(5):
        submit(client, role_tokens["agent"], report("2026-05-06T07:00:00Z", container_id=f"c{i}"))
    submit(client, other, report("2026-05-06T07:00:00Z", finalized=True))
    admin = role_tokens["admin"]
    assert [r["agent_id"] for r in items(client, admin, "?agent_id=node-2")] == ["node-2"]
    assert [r["container_id"] for r in items(client, admin, "?container_id=c3")] == ["c3"]
    assert len(items(client, admin, "?finalized=false")) == 5
    assert len(items(client, admin, "?finalized=true")) == 1
    seen: list[str] = []
    query = "?limit=2"
    while True:
        page = client.get(f"/v1/reports{query}", headers=bearer(admin)).get_json()
        seen.extend(r["id"] for r in page["items"])
        if page["next"] is None:
            break
        query = f"?limit=2&cursor={page['next']}"
    assert len(seen) == len(set(seen)) == 6
