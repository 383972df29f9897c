# SPDX-License-Identifier: Apache-2.0
"""Inputs that used to pass the edge and fail later: now a clean problem+json 4xx.

Each case was found by tests/integration/api (schemathesis, bad-input sweeps).
test_problems.py covers the problem document itself.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from flask.testing import FlaskClient

from attestor.api._json_body import Blueprint as StrictBlueprint
from attestor.api.auth import require_roles
from attestor.api.blueprints import BLUEPRINT_MODULES
from tests.unit.api.conftest import bearer

PROBLEM = "application/problem+json"


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    return body


def test_non_json_body_is_415_not_silently_ignored(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    # webargs would parse {} from a text/plain body and rotate with defaults.
    r = client.post(
        "/v1/keys/rotate",
        data=b'{"algorithm": "ed25519"}',
        headers={**bearer(role_tokens["admin"]), "Content-Type": "text/plain"},
    )
    _problem(r, 415)


def test_json_suffix_media_types_are_json(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    r = client.post(
        "/v1/tokens",
        data=b'{"role": "pipeline"}',
        headers={**bearer(role_tokens["admin"]), "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    ["/v1/reports/a%00b", "/v1/jobs/a%00b", "/v1/violations?container_id=a%00b"],
)
def test_nul_in_the_url_is_400(client: FlaskClient, role_tokens: dict[str, str], url: str) -> None:
    # PostgreSQL refuses NUL in text: these were 500s there.
    body = _problem(client.get(url, headers=bearer(role_tokens["admin"])), 400)
    assert body["type"] == "urn:attestor:problem:invalid-input"


def test_nul_in_a_token_name_is_422(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    r = client.post(
        "/v1/tokens",
        json={"role": "pipeline", "name": "ci\x00"},
        headers=bearer(role_tokens["admin"]),
    )
    assert "name" in _problem(r, 422)["errors"]["json"]


@pytest.mark.parametrize("field", ["hostname", "version"])
def test_nul_in_agent_registration_is_422(
    client: FlaskClient, role_tokens: dict[str, str], field: str
) -> None:
    body = {"hostname": "n1", "mode": "node", "version": "1", field: "x\x00"}
    r = client.post("/v1/agents/register", json=body, headers=bearer(role_tokens["agent"]))
    assert field in _problem(r, 422)["errors"]["json"]


def test_heartbeat_counter_over_int32_is_422(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    # Was a 500: the counters are INTEGER columns.
    r = client.post(
        "/v1/agents/node-1/heartbeat",
        json={"containers": 2**31, "layers": 1, "pending_violations": 0},
        headers=bearer(role_tokens["agent"]),
    )
    assert "containers" in _problem(r, 422)["errors"]["json"]


def test_require_roles_keeps_responses_documented_below_it() -> None:
    # A @blp.doc(responses=...) under @require_roles used to lose its entries.
    def view() -> None:
        return None

    view._apidoc = {"manual_doc": {"responses": {"200": {"description": "the bytes"}}}}  # type: ignore[attr-defined]
    wrapped = require_roles("admin")(view)
    responses = wrapped._apidoc["manual_doc"]["responses"]  # type: ignore[attr-defined]
    assert set(responses) == {"200", "401", "403"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        # webargs' parser (flask-smorest views).
        (
            "/v1/tokens",
            b'{"role": "pipeline", "role": "admin", "name": "x"}',
            "request body: duplicate JSON key 'role'",
        ),
        ("/v1/tokens", b'{"role": "pipeline", "name": NaN}', "request body: non-standard JSON"),
        # request.get_json() (bulk verification): an envelope read two ways.
        (
            "/v1/verifications",
            b'{"items": [{"envelope": {"payloadType": "t", "payload": "e30=", '
            b'"payload": "W10=", "signatures": []}, "artifact_digest": "sha256:'
            + b"a" * 64
            + b'"}]}',
            "request body: duplicate JSON key 'payload'",
        ),
    ],
    ids=["smorest-duplicate", "smorest-nan", "get-json-duplicate"],
)
def test_ambiguous_json_bodies_are_400_and_change_nothing(
    client: FlaskClient, role_tokens: dict[str, str], path: str, body: bytes, message: str
) -> None:
    headers = {**bearer(role_tokens["admin"]), "Content-Type": "application/json"}
    before = client.get("/v1/tokens", headers=headers).get_json()
    problem = _problem(client.post(path, data=body, headers=headers), 400)
    assert problem["detail"].startswith(message), problem
    assert client.get("/v1/tokens", headers=headers).get_json() == before


@pytest.mark.parametrize("module", BLUEPRINT_MODULES)
def test_every_blueprint_parses_json_bodies_strictly(module: str) -> None:
    # A flask_smorest.Blueprint would parse bodies with json.loads (last member wins).
    blp = importlib.import_module(module).blp
    assert isinstance(blp, StrictBlueprint), f"{module}: use attestor.api._json_body.Blueprint"
