# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api._state import app_state
from attestor.api.app import SWAGGER_UI_ASSETS, SWAGGER_UI_CDN
from attestor.errors import InvalidInput
from attestor.jobqueue import submit
from attestor.logs import JsonFormatter
from attestor.store import jobs
from tests.unit.api.conftest import NOW, bearer


def test_healthz_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readyz_503_when_redis_down(make_app) -> None:  # type: ignore[no-untyped-def]
    from attestor.jobs.runner import InlineRunner

    app = make_app(redis_url="redis://127.0.0.1:1/0")
    # Nothing listens on port 1: readiness must report Redis down.
    assert not isinstance(app_state(app).runner, InlineRunner)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.mimetype == "application/problem+json"
    body = r.get_json(force=True)
    assert body["checks"]["database"] == "ok"
    assert "redis" in body["checks"]
    assert r.headers["Retry-After"] == "5"


def test_metrics(client: FlaskClient, app: Flask) -> None:
    client.get("/healthz")
    with app_state(app).session_factory.begin() as s:
        jobs.create_job(s, kind="echo", payload={}, now=NOW)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'attestor_http_requests_total{endpoint="/healthz",method="GET",status="200"} 1.0' in text
    assert "attestor_http_request_duration_seconds_bucket" in text
    assert "attestor_attestations_issued_total 0.0" in text
    assert "attestor_verifications_total" in text
    assert "attestor_job_queue_depth 1.0" in text


def test_request_id_echoed_or_generated(client: FlaskClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id ';' " + "x" * 200}).headers[
        "X-Request-ID"
    ]
    assert len(generated) == 32
    assert " " not in generated


def test_access_log_is_structured(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="attestor.access"):
        client.get("/healthz", headers={"X-Request-ID": "rid-1"})
    record = next(r for r in caplog.records if r.name == "attestor.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "rid-1"
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO"
    assert {"ts", "msg"} <= line.keys()


def test_openapi_and_docs(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/tokens" in spec["paths"]
    post = spec["paths"]["/v1/tokens"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert "requestBody" in post
    assert "Problem" in spec["components"]["schemas"]
    default_error = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert "application/problem+json" in default_error
    assert client.get("/docs").status_code == 200


def test_docs_page_pins_swagger_ui_with_subresource_integrity(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"[^>]*?integrity="(sha384-[^"]+)"', page)
    assert sorted(url.rsplit("/", 1)[1] for url, _ in assets) == sorted(SWAGGER_UI_ASSETS)
    for url, integrity in assets:
        assert url.startswith(SWAGGER_UI_CDN)
        assert "@5.35.0/" in url  # one release, never a moving tag
        assert integrity == SWAGGER_UI_ASSETS[url.rsplit("/", 1)[1]]
    assert page.count('crossorigin="anonymous"') == 3
    assert "/openapi.json" in page


def test_job_visibility(app: Flask, client: FlaskClient, role_tokens: dict[str, str]) -> None:
    from attestor.store import tokens

    with app_state(app).session_factory() as s:
        by_role = {t.role: t.id for t in tokens.list_tokens(s) if t.name == ""}
    state = app_state(app)
    runner = state.runner
    job = submit(
        state.session_factory,
        runner,
        kind="echo",
        payload={"x": 1},
        created_by=by_role["pipeline"],
        now=NOW,
    )
    with pytest.raises(InvalidInput, match="unknown job kind"):
        submit(state.session_factory, runner, kind="nope", payload={}, now=NOW)
    runner.wait(timeout=10)  # type: ignore[attr-defined]
    mine = client.get(f"/v1/jobs/{job.id}", headers=bearer(role_tokens["pipeline"]))
    assert mine.status_code == 200
    body = mine.get_json()
    assert body["status"] == "finished"
    assert body["result"] == {"echo": {"x": 1}}
    assert body["progress"]["done"] == 1
    assert body["results_url"] is None  # only verify jobs have per-item results
    assert client.get(f"/v1/jobs/{job.id}", headers=bearer(role_tokens["admin"])).status_code == 200
    assert client.get(f"/v1/jobs/{job.id}", headers=bearer(role_tokens["agent"])).status_code == 404
