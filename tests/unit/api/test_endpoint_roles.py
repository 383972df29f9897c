# SPDX-License-Identifier: Apache-2.0
"""THE endpoint x role test: every route in the app, with every role.

Later phases MUST add each endpoint they create to ``EXPECTED``; the test fails
for any route the table lacks (and for any table entry no route matches).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from tests.unit.api.conftest import bearer, create_token, fixed_clock

PUBLIC: frozenset[str] = frozenset()
ALL = frozenset({"admin", "pipeline", "agent"})

#: (method, rule) -> roles allowed; PUBLIC means no token needed.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/jobs/<job_id>"): ALL,
    ("POST", "/v1/tokens"): frozenset({"admin"}),
    ("GET", "/v1/tokens"): frozenset({"admin"}),
    ("DELETE", "/v1/tokens/<token_id>"): frozenset({"admin"}),
    ("POST", "/v1/agents/register"): frozenset({"agent"}),
    ("POST", "/v1/agents/<agent_id>/heartbeat"): frozenset({"agent"}),
    ("GET", "/v1/agents"): frozenset({"admin"}),
    ("POST", "/v1/violations"): frozenset({"agent"}),
    ("GET", "/v1/violations"): frozenset({"admin"}),
    ("POST", "/v1/reports"): frozenset({"agent"}),
    ("GET", "/v1/reports"): frozenset({"admin"}),
    ("GET", "/v1/reports/<report_id>"): frozenset({"admin"}),
    ("POST", "/v1/attestations"): ALL,
    ("GET", "/v1/attestations"): ALL,
    ("GET", "/v1/attestations/<attestation_id>"): ALL,
    ("GET", "/v1/attestations/<attestation_id>/envelope"): ALL,
    ("GET", "/v1/attestations/<attestation_id>/bundle"): ALL,
    ("GET", "/v1/manifests/<digest>"): ALL,
    ("GET", "/v1/keys"): ALL,
    ("GET", "/v1/keys/set"): ALL,
    ("POST", "/v1/keys"): frozenset({"admin"}),
    ("POST", "/v1/keys/rotate"): frozenset({"admin"}),
    ("POST", "/v1/keys/<keyid>/revoke"): frozenset({"admin"}),
    ("POST", "/v1/verifications"): frozenset({"admin", "pipeline"}),
    ("GET", "/v1/jobs/<job_id>/results"): frozenset({"admin", "pipeline"}),
    ("POST", "/v1/revocations"): frozenset({"admin"}),
    ("GET", "/v1/revocations"): frozenset({"admin"}),
    ("GET", "/v1/revocations/<revocation_id>"): frozenset({"admin"}),
    ("GET", "/v1/revocations/feed"): frozenset({"admin", "agent"}),
    ("GET", "/v1/policies"): frozenset({"admin"}),
    ("POST", "/v1/policies"): frozenset({"admin"}),
    ("GET", "/v1/policies/<policy_id>"): frozenset({"admin"}),
    ("PUT", "/v1/policies/<policy_id>"): frozenset({"admin"}),
    ("DELETE", "/v1/policies/<policy_id>"): frozenset({"admin"}),
    ("GET", "/v1/policies/<policy_id>/versions"): frozenset({"admin"}),
    ("GET", "/v1/policies/<policy_id>/versions/<version>"): frozenset({"admin"}),
    ("POST", "/v1/policies/<policy_id>/rollback"): frozenset({"admin"}),
    ("POST", "/v1/policies/evaluate"): frozenset({"admin", "pipeline"}),
    ("GET", "/v1/audit"): frozenset({"admin"}),
}
#: Served by flask-smorest for the documentation; public, not part of the API.
DOC_RULES = frozenset({"/openapi.json", "/docs"})
ROLES = ("none", "admin", "pipeline", "agent")
_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    # One app for the whole table: every request here leaves the state as it was.
    data_dir = tmp_path_factory.mktemp("roles")
    app = create_app(
        load_settings({"ATTESTOR_DATA_DIR": str(data_dir)}),
        overrides={"TESTING": True},
        clock=fixed_clock,
    )
    yield app
    app_state(app).engine.dispose()


@pytest.fixture(scope="module")
def shared_tokens(shared_app: Flask) -> dict[str, str]:
    return {
        "admin": create_token(shared_app, "admin")[0],
        "pipeline": create_token(shared_app, "pipeline")[0],
        "agent": create_token(shared_app, "agent", "node-1")[0],
    }


def _routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in DOC_RULES or rule.endpoint.endswith("static"):
            continue
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                # "<string:job_id>" -> "<job_id>": the table names arguments only.
                routes.add((method, _ARG.sub(r"<\1>", rule.rule)))
    return routes


def test_table_covers_every_route(shared_app: Flask) -> None:
    routes = _routes(shared_app)
    missing = sorted(routes - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - routes)
    assert not missing, f"add these endpoints to EXPECTED: {missing}"
    assert not stale, f"EXPECTED lists endpoints that no longer exist: {stale}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "rule"), sorted(EXPECTED))
def test_endpoint_role(
    shared_app: Flask, shared_tokens: dict[str, str], method: str, rule: str, role: str
) -> None:
    client: FlaskClient = shared_app.test_client()
    path = _ARG.sub("00000000-0000-4000-8000-000000000000", rule)
    headers = bearer(shared_tokens[role]) if role != "none" else {}
    kwargs = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    response = client.open(path, method=method, headers=headers, **kwargs)
    allowed = EXPECTED[(method, rule)]
    if allowed == PUBLIC:
        assert response.status_code not in {401, 403}
    elif role == "none":
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.mimetype == "application/problem+json"
    elif role not in allowed:
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
    else:
        assert response.status_code not in {401, 403}, response.get_data(as_text=True)
