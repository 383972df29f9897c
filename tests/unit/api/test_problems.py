# SPDX-License-Identifier: Apache-2.0
"""Every error is application/problem+json (RFC 9457) and never a stack trace."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.unit.api.conftest import bearer

PROBLEM = "application/problem+json"


def _assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "status", "instance"} <= body.keys()
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert 'File "' not in text
    return body


def test_400_malformed_json(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    r = client.post(
        "/v1/tokens",
        data=b"{not json",
        headers={**bearer(role_tokens["admin"]), "Content-Type": "application/json"},
    )
    body = _assert_problem(r, 400)
    assert body["type"] == "urn:attestor:problem:invalid-input"


def test_422_schema_violation_lists_fields(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    r = client.post("/v1/tokens", json={"role": "root"}, headers=bearer(role_tokens["admin"]))
    body = _assert_problem(r, 422)
    assert "role" in body["errors"]["json"]


def test_400_domain_error(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    r = client.post("/v1/tokens", json={"role": "agent"}, headers=bearer(role_tokens["admin"]))
    body = _assert_problem(r, 400)
    assert body["type"] == "urn:attestor:problem:invalid-input"
    assert "agent_id" in body["detail"]


def test_401_and_403(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    body = _assert_problem(client.get("/v1/tokens"), 401)
    assert body["type"] == "urn:attestor:problem:unauthorized"
    _assert_problem(client.get("/v1/tokens", headers=bearer("att_unknown")), 401)
    _assert_problem(client.get("/v1/tokens", headers={"Authorization": "Basic eDp5"}), 401)
    body = _assert_problem(client.get("/v1/tokens", headers=bearer(role_tokens["pipeline"])), 403)
    assert body["type"] == "urn:attestor:problem:forbidden"
    assert body["allowed_roles"] == ["admin"]


def test_404_and_405(client: FlaskClient) -> None:
    assert _assert_problem(client.get("/nope"), 404)["type"] == "about:blank"
    r = client.put("/healthz")
    _assert_problem(r, 405)
    assert "GET" in r.headers["Allow"]


def test_413_body_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(max_body_bytes=1024, max_bulk_body_bytes=4096)
    from attestor.api._state import app_state
    from attestor.store import tokens

    with app_state(app).session_factory.begin() as s:
        token, _ = tokens.create_token(s, role="admin", now=app_state(app).clock())
    client = app.test_client()
    r = client.post(
        "/v1/tokens", json={"role": "pipeline", "name": "x" * 2000}, headers=bearer(token)
    )
    body = _assert_problem(r, 413)
    assert body["type"] == "urn:attestor:problem:too-large"
    assert body["limit_bytes"] == 1024


def test_bulk_endpoint_gets_the_larger_limit(make_app: Callable[..., Flask]) -> None:
    from attestor.api.auth import public
    from attestor.api.limits import bulk_body

    app = make_app(max_body_bytes=1024, max_bulk_body_bytes=8192)

    @public
    @bulk_body
    def upload() -> dict[str, int]:
        from flask import request

        return {"n": len(request.get_data())}

    app.add_url_rule("/bulk", view_func=upload, methods=["POST"])
    client = app.test_client()
    assert client.post("/bulk", data=b"x" * 4000).get_json() == {"n": 4000}
    _assert_problem(client.post("/bulk", data=b"x" * 9000), 413)


def test_500_is_generic(make_app: Callable[..., Flask]) -> None:
    from attestor.api.auth import public

    app = make_app()

    @public
    def boom() -> str:
        raise RuntimeError("secret internals /etc/passwd")

    app.add_url_rule("/boom", view_func=boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = app.test_client().get("/boom")
    body = _assert_problem(r, 500)
    assert "secret" not in r.get_data(as_text=True)
    assert body["type"] == "about:blank"


def test_undeclared_view_is_refused(make_app: Callable[..., Flask]) -> None:
    import pytest

    from attestor.api.app import DOC_ENDPOINTS
    from attestor.api.auth import check_declarations

    app = make_app()
    app.add_url_rule("/open", view_func=lambda: "x")
    with pytest.raises(RuntimeError, match="lacks @public or @require_roles"):
        check_declarations(app, exempt=DOC_ENDPOINTS)
