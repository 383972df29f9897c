# SPDX-License-Identifier: Apache-2.0
"""The policy and audit API on PostgreSQL, with two app instances sharing the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.services.audit import verify_chain
from attestor.services.policy_db import PROPAGATION_BOUND_S, DatabasePolicies
from attestor.store import tokens
from attestor.store.models import AuditLogModel, PolicyVersionModel
from tests.harness.databases import fresh_postgres_database
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url, prefix="pol") as url:
        yield url


def _app(tmp_path: Path, url: str, name: str) -> Flask:
    (tmp_path / name / "policies").mkdir(parents=True)
    env = {
        "ATTESTOR_DATA_DIR": str(tmp_path / name / "var"),
        "ATTESTOR_POLICY_DIR": str(tmp_path / name / "policies"),
        "DATABASE_URL": url,
    }
    return create_app(load_settings(env), overrides={"TESTING": True})


@pytest.fixture
def apps(tmp_path: Path, pg_database_url: str) -> Iterator[tuple[Flask, Flask]]:
    first = _app(tmp_path, pg_database_url, "a")
    second = _app(tmp_path, pg_database_url, "b")
    yield first, second
    for app in (first, second):
        app_state(app).engine.dispose()


def _token(app: Flask, role: str = "admin") -> dict[str, str]:
    with app_state(app).session_factory.begin() as s:
        secret, _ = tokens.create_token(
            s, role=role, agent_id="n1" if role == "agent" else None, now=NOW
        )
    return {"Authorization": f"Bearer {secret}"}


def _json(client: FlaskClient, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
    response = client.open(url, method=method, headers=headers, **kw)
    return response.status_code, response.get_json()


def _counts(app: Flask) -> tuple[int, int]:
    with app_state(app).session_factory() as s:
        return (
            int(s.scalar(select(func.count()).select_from(PolicyVersionModel)) or 0),
            int(s.scalar(select(func.count()).select_from(AuditLogModel)) or 0),
        )


def test_policy_lifecycle_through_the_api(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    admin, client = _token(app), app.test_client()
    v1 = policy_doc("team").decode()
    v2 = policy_doc("team", label="2", host="q.example").decode()

    status, body = _json(client, "POST", "/v1/policies", admin, json={"document": v1})
    assert status == 201
    assert (body["id"], body["version"], body["label"], body["outcome"]) == (
        "team",
        1,
        "1",
        "created",
    )
    assert body["document"] == v1
    assert body["created_by"].startswith("token:")
    assert _json(client, "POST", "/v1/policies", admin, json={"document": v1})[0] == 409

    status, body = _json(client, "PUT", "/v1/policies/team", admin, json={"document": v2})
    assert (status, body["version"], body["outcome"]) == (200, 2, "updated")
    status, body = _json(client, "PUT", "/v1/policies/team", admin, json={"document": v2})
    assert (status, body["version"], body["outcome"]) == (200, 2, "unchanged")
    status, body = _json(client, "PUT", "/v1/policies/other", admin, json={"document": v2})
    assert status == 400 and "is not the policy 'other'" in body["detail"]

    status, body = _json(client, "GET", "/v1/policies/team/versions", admin)
    assert status == 200
    assert [(v["version"], v["label"]) for v in body["versions"]] == [(1, "1"), (2, "2")]
    status, body = _json(client, "GET", "/v1/policies/team/versions/1", admin)
    assert (status, body["document"]) == (200, v1)
    for missing in ("9", "x", "0", "99999999999", "-1"):
        response = client.get(f"/v1/policies/team/versions/{missing}", headers=admin)
        assert (response.status_code, response.mimetype) == (404, "application/problem+json")

    status, body = _json(client, "POST", "/v1/policies/team/rollback", admin, json={"version": 1})
    assert (status, body["version"], body["document"], body["outcome"]) == (
        200,
        3,
        v1,
        "rolled-back",
    )
    status, body = _json(client, "POST", "/v1/policies/team/rollback", admin, json={"version": 9})
    assert status == 404

    status, body = _json(client, "GET", "/v1/policies", admin)
    assert [(p["id"], p["version"]) for p in body["policies"]] == [("team", 3)]
    assert client.delete("/v1/policies/team", headers=admin).status_code == 204
    assert client.get("/v1/policies/team", headers=admin).status_code == 404
    assert _json(client, "GET", "/v1/policies", admin)[1] == {"policies": []}
    status, body = _json(client, "GET", "/v1/policies?include_deleted=true", admin)
    assert [(p["id"], p["deleted"]) for p in body["policies"]] == [("team", True)]

    # The audit log, paged: one row per change, in order, chained.
    status, page = _json(client, "GET", "/v1/audit?limit=2", admin)
    assert status == 200
    items = page["items"]
    status, rest = _json(client, "GET", f"/v1/audit?limit=2&cursor={page['next']}", admin)
    items += rest["items"]
    assert rest["next"] is None
    assert [i["action"] for i in items] == [
        "policy.create",
        "policy.update",
        "policy.rollback",
        "policy.delete",
    ]
    assert [i["seq"] for i in items] == [1, 2, 3, 4]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(items, items[1:], strict=False))
    assert page["head"] == {"seq": 4, "hash": items[-1]["hash"]}
    assert items[2]["change"]["from_version"] == 1
    status, only = _json(client, "GET", "/v1/audit?action=policy.delete", admin)
    assert [i["seq"] for i in only["items"]] == [4]
    assert _json(client, "GET", "/v1/audit?cursor=bad!", admin)[0] == 400
    with app_state(app).session_factory() as s:
        assert verify_chain(s).ok


def test_an_invalid_document_is_422_with_pointers_and_stores_nothing(
    apps: tuple[Flask, Flask],
) -> None:
    app, _ = apps
    admin, client = _token(app), app.test_client()
    for bad in (
        policy_doc().decode().replace("registries", "registriez"),
        "id: [",
        "apiVersion: attestor.dev/v1alpha1\n",
    ):
        response = client.post("/v1/policies", headers=admin, json={"document": bad})
        assert response.status_code == 422
        assert response.content_type == "application/problem+json"
        errors = response.get_json()["errors"]["json"]["document"]
        assert errors and all(set(e) == {"pointer", "message"} for e in errors)
    client.post("/v1/policies", headers=admin, json={"document": policy_doc().decode()})
    response = client.put("/v1/policies/team", headers=admin, json={"document": "kind: x"})
    assert response.status_code == 422
    assert _counts(app) == (1, 1)


def test_only_admins_manage_policies_and_read_the_audit_log(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    client = app.test_client()
    for role in ("pipeline", "agent"):
        headers = _token(app, role)
        assert client.get("/v1/policies", headers=headers).status_code == 403
        assert client.get("/v1/audit", headers=headers).status_code == 403
        r = client.post("/v1/policies", headers=headers, json={"document": policy_doc().decode()})
        assert r.status_code == 403
    assert client.get("/v1/audit").status_code == 401
    assert _counts(app) == (0, 0)


def test_a_change_on_one_instance_is_in_force_on_the_other_within_the_bound(
    apps: tuple[Flask, Flask],
) -> None:
    first, second = apps
    admin = _token(first)
    # The second instance's own engine, pool and source: nothing shared but the database.
    source = DatabasePolicies(app_state(second).session_factory)
    assert source.current().policies == ()

    def in_force_after(change: Any) -> set[tuple[str, str]]:
        started = time.monotonic()
        change()
        while time.monotonic() - started < PROPAGATION_BOUND_S:
            hosts = {(p.id, r.host) for p in source.current().policies for r in p.registries}
            if hosts != seen[-1]:
                seen.append(hosts)
                return hosts
            time.sleep(0.05)
        raise AssertionError(f"no change seen within {PROPAGATION_BOUND_S} s")

    seen: list[set[tuple[str, str]]] = [set()]
    client = first.test_client()
    doc = policy_doc("team").decode()
    assert in_force_after(
        lambda: client.post("/v1/policies", headers=admin, json={"document": doc})
    ) == {("team", "r.example")}
    doc2 = policy_doc("team", label="2", host="q.example").decode()
    assert in_force_after(
        lambda: client.put("/v1/policies/team", headers=admin, json={"document": doc2})
    ) == {("team", "q.example")}
    assert in_force_after(
        lambda: client.post("/v1/policies/team/rollback", headers=admin, json={"version": 1})
    ) == {("team", "r.example")}
    assert in_force_after(lambda: client.delete("/v1/policies/team", headers=admin)) == set()
