# SPDX-License-Identifier: Apache-2.0
"""/v1/violations: idempotent batches, atomic rejection, listing with filters and pages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.schemas import load_schema
from attestor.store import violations as violation_store
from attestor.violation_kinds import VIOLATION_KINDS
from tests.unit.api.conftest import bearer, create_token

IMAGE = "sha256:" + "a" * 64
LAYER = "sha256:" + "b" * 64
OTHER_IMAGE = "sha256:" + "c" * 64


def violation(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "container_id": "ctr-1",
        "image_digest": IMAGE,
        "layer_digest": LAYER,
        "path": "bin/sh",
        "kind": "content",
        "detail": {"expected": "sha256:" + "1" * 64, "actual": "sha256:" + "2" * 64},
        "detected_at": "2026-05-06T07:00:00Z",
    }
    doc.update(changes)
    return doc


def post(client: FlaskClient, token: str, items: list[dict[str, Any]], **headers: str) -> Any:
    return client.post(
        "/v1/violations", json={"violations": items}, headers={**bearer(token), **headers}
    )


def listing(client: FlaskClient, token: str, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/violations{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_kinds_match_the_json_schema() -> None:
    enum = load_schema("violation")["$defs"]["kind"]["enum"]
    assert list(VIOLATION_KINDS) == enum


def test_batch_stored_and_listed_with_agent_from_token(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    items = [violation(), violation(kind="unattested", path=None, layer_digest=None)]
    # A body cannot name the agent: an "agent_id" member is refused, not trusted.
    spoofed = post(client, role_tokens["agent"], [{**violation(), "agent_id": "node-9"}])
    assert spoofed.status_code == 422
    response = post(client, role_tokens["agent"], items, **{"Idempotency-Key": "batch-1"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": 2, "duplicates": 0}
    page = listing(client, role_tokens["admin"])
    assert page["next"] is None
    assert [v["id"] for v in page["items"]] == [items[1]["id"], items[0]["id"]]  # newest first
    first = page["items"][1]
    assert first["agent_id"] == "node-1"
    assert first["detail"] == items[0]["detail"]
    assert first["detected_at"].startswith("2026-05-06T07:00:00")
    assert first["received_at"].startswith("2026-05-06T07:08:09")
    assert set(first) == {
        "id",
        "agent_id",
        "container_id",
        "image_digest",
        "layer_digest",
        "path",
        "kind",
        "detail",
        "detected_at",
        "received_at",
    }


def test_replays_are_counted_not_stored_twice(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    token = role_tokens["agent"]
    a, b, c = violation(), violation(), violation()
    assert post(client, token, [a, b]).get_json() == {"accepted": 2, "duplicates": 0}
    assert post(client, token, [a, b]).get_json() == {"accepted": 0, "duplicates": 2}
    assert post(client, token, [b, c]).get_json() == {"accepted": 1, "duplicates": 1}
    # The same id twice in one batch is stored once.
    d = violation()
    assert post(client, token, [d, d]).get_json() == {"accepted": 1, "duplicates": 1}
    ids = [v["id"] for v in listing(client, role_tokens["admin"])["items"]]
    assert sorted(ids) == sorted([a["id"], b["id"], c["id"], d["id"]])


def test_same_violation_id_from_two_agents_is_two_violations(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    other, _ = create_token(app, "agent", "node-2")
    v = violation()
    assert post(client, role_tokens["agent"], [v]).get_json()["accepted"] == 1
    assert post(client, other, [v]).get_json()["accepted"] == 1
    items = listing(client, role_tokens["admin"])["items"]
    assert sorted(i["agent_id"] for i in items) == ["node-1", "node-2"]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "tampered"},
        {"id": "not-a-uuid"},
        {"image_digest": "sha256:short"},
        {"detected_at": "2026-05-06T07:00:00"},  # no offset
        {"path": ""},
        {"detail": "text"},
        {"path": "bin/\x00sh"},
    ],
)
def test_one_invalid_violation_rejects_the_whole_batch(
    client: FlaskClient, role_tokens: dict[str, str], bad: dict[str, Any]
) -> None:
    response = post(client, role_tokens["agent"], [violation(), violation(**bad)])
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "urn:attestor:problem:invalid-input"
    # The error names the offending item.
    assert "1" in problem["errors"]["json"]["violations"]
    assert listing(client, role_tokens["admin"])["items"] == []


def test_batch_bounds(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    assert post(client, role_tokens["agent"], []).status_code == 422
    too_many = [violation() for _ in range(violation_store.MAX_BATCH + 1)]
    assert post(client, role_tokens["agent"], too_many).status_code == 422
    assert listing(client, role_tokens["admin"])["items"] == []


def test_a_full_batch_may_exceed_the_normal_body_limit(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    # 1,000 violations with long paths: about 1.4 MiB, over max_body_bytes (1 MiB).
    batch = [violation(path="d/" * 600 + f"{i}") for i in range(violation_store.MAX_BATCH)]
    response = post(client, role_tokens["agent"], batch)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": 1000, "duplicates": 0}


def test_oversized_detail_is_refused(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    big = {"blob": "x" * violation_store.MAX_DETAIL_BYTES}
    response = post(client, role_tokens["agent"], [violation(detail=big)])
    assert response.status_code == 422
    assert "detail" in response.get_json()["errors"]["json"]["violations"]["0"]


def test_bad_idempotency_key_is_refused(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    response = post(client, role_tokens["agent"], [violation()], **{"Idempotency-Key": "a b"})
    assert response.status_code == 400
    assert listing(client, role_tokens["admin"])["items"] == []


def test_filters(app: Flask, client: FlaskClient, role_tokens: dict[str, str]) -> None:
    other, _ = create_token(app, "agent", "node-2")
    mine = [
        violation(kind="mode", detected_at="2026-05-06T06:00:00Z"),
        violation(container_id="ctr-2", kind="added"),
        violation(
            image_digest=OTHER_IMAGE,
            layer_digest=None,
            path="usr/bin/x",
            kind="drift-new-executable",
        ),
    ]
    post(client, role_tokens["agent"], mine)
    theirs = violation(kind="mode")
    post(client, other, [theirs])
    admin = role_tokens["admin"]

    def ids(query: str) -> set[str]:
        return {v["id"] for v in listing(client, admin, query)["items"]}

    assert ids("?agent_id=node-2") == {theirs["id"]}
    assert ids("?kind=mode") == {mine[0]["id"], theirs["id"]}
    assert ids("?kind=mode&agent_id=node-1") == {mine[0]["id"]}
    assert ids("?container_id=ctr-2") == {mine[1]["id"]}
    assert ids(f"?image_digest={OTHER_IMAGE}") == {mine[2]["id"]}
    assert ids(f"?layer_digest={LAYER}") == {mine[0]["id"], mine[1]["id"], theirs["id"]}
    assert ids("?since=2026-05-06T06:30:00Z") == {mine[1]["id"], mine[2]["id"], theirs["id"]}
    assert client.get("/v1/violations?kind=nope", headers=bearer(admin)).status_code == 422
    assert client.get("/v1/violations?limit=0", headers=bearer(admin)).status_code == 422


def test_pagination_walks_every_item_once(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    sent = [violation() for _ in range(7)]
    post(client, role_tokens["agent"], sent)
    seen: list[str] = []
    query = "?limit=3"
    pages = 0
    while True:
        page = listing(client, role_tokens["admin"], query)
        pages += 1
        seen.extend(v["id"] for v in page["items"])
        if page["next"] is None:
            break
        query = f"?limit=3&cursor={page['next']}"
    assert pages == 3
    assert seen == [v["id"] for v in reversed(sent)]
    bad = client.get("/v1/violations?cursor=bm9wZQ", headers=bearer(role_tokens["admin"]))
    assert bad.status_code == 400
    assert bad.get_json()["detail"] == "malformed cursor"
