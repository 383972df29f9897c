# SPDX-License-Identifier: Apache-2.0
"""NUL is refused in every body the parsers read as JSON, not only application/json.

Flask and webargs read ``application/*+json`` bodies as JSON too; a NUL in
one was stored as is (PostgreSQL cannot hold it: a 500 there).
"""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api._state import app_state
from attestor.store import revocations as revocation_store
from tests.unit.api.conftest import bearer

TARGET = {"kind": "image", "digest": "sha256:" + "ab" * 32}


def _count(app: Flask) -> int:
    with app_state(app).session_factory() as session:
        return len(revocation_store.list_revocations(session, limit=100)[0])


@pytest.mark.parametrize(
    "media_type",
    [
        "application/json",
        "application/merge-patch+json",
        "application/vnd.foo+json",
        "application/problem+json; charset=utf-8",
        "Application/Vnd.Foo+JSON",
    ],
)
def test_nul_in_any_json_media_type_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str], media_type: str
) -> None:
    body = json.dumps({"target": TARGET, "reason": "compromised\x00"})
    assert "\\u0000" in body
    r = client.post(
        "/v1/revocations",
        data=body,
        headers={**bearer(role_tokens["admin"]), "Content-Type": media_type},
    )
    assert r.status_code == 422, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.get_json()["errors"]["json"] == {"reason": ["must not contain NUL"]}
    assert _count(app) == 0


def test_the_same_body_without_nul_is_stored_under_a_json_suffix_type(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    # The control: the +json body is read and stored, so the refusal above is the NUL's.
    r = client.post(
        "/v1/revocations",
        data=json.dumps({"target": TARGET, "reason": "compromised"}),
        headers={**bearer(role_tokens["admin"]), "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert _count(app) == 1
