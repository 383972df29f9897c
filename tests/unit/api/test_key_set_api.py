# SPDX-License-Identifier: Apache-2.0
"""``GET /v1/keys/set``: the signed key set follows rotations, signed by the old key."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from agent.trust import KeyPins
from attestor.schemas import validate
from attestor.signing.keyset import KEY_SET_PAYLOAD_TYPE, verify_key_set
from attestor.verify import TrustedKey
from tests.unit.api.conftest import bearer


def _set(client: FlaskClient, token: str) -> bytes:
    resp = client.get("/v1/keys/set", headers=bearer(token))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json" and resp.headers["Cache-Control"] == "no-cache"
    return resp.get_data()


def _post(client: FlaskClient, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(path, json=body, headers=bearer(token))
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    doc: dict[str, Any] = resp.get_json()
    return doc


def test_the_set_lists_every_key_and_a_rotation_is_signed_by_the_old_key(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    agent, admin = role_tokens["agent"], role_tokens["admin"]
    first = _set(client, agent)
    envelope = json.loads(first)
    assert envelope["payloadType"] == KEY_SET_PAYLOAD_TYPE
    (listed,) = client.get("/v1/keys", headers=bearer(agent)).get_json()["keys"]
    old = TrustedKey.from_pem(listed["public_key_pem"])
    key_set = verify_key_set(first, [old])
    assert key_set.version == 1 and [k.keyid for k in key_set.keys] == [listed["keyid"]]
    validate(json.loads(key_set.payload), "key-set")
    assert _set(client, agent) == first  # kept per payload: not signed again

    new = _post(client, "/v1/keys/rotate", admin, {})
    rotated = _set(client, agent)
    by_old = verify_key_set(rotated, [old])
    assert by_old.version == 3
    # (The test clock is fixed: both keys have the same creation time.)
    assert {k.keyid: k.status for k in by_old.keys} == {
        listed["keyid"]: "retired", new["keyid"]: "active"
    }  # fmt: skip
    assert len(json.loads(rotated)["signatures"]) == 2
    assert verify_key_set(rotated, [TrustedKey.from_pem(new["public_key_pem"])]).version == 3

    # An agent that pinned the first set follows the rotation.
    pins = KeyPins(None)
    assert pins.offer(first).outcome == "pinned"
    assert pins.offer(rotated).outcome == "updated"

    # The old key revoked: it no longer signs, and the set says so.
    _post(client, f"/v1/keys/{listed['keyid']}/revoke", admin, {"reason": "test"})
    revoked = _set(client, agent)
    assert len(json.loads(revoked)["signatures"]) == 1
    assert pins.offer(revoked).outcome == "updated"
    assert [k.keyid for k in pins.trusted_keys()] == [new["keyid"]]
    # An agent still pinned to the old key alone cannot follow that step.
    stale = KeyPins(None)
    stale.offer(first)
    assert stale.offer(revoked).outcome == "refused"


def test_with_every_key_revoked_the_set_is_409(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    admin = role_tokens["admin"]
    (key,) = client.get("/v1/keys", headers=bearer(admin)).get_json()["keys"]
    _post(client, f"/v1/keys/{key['keyid']}/revoke", admin, {"reason": "test"})
    resp = client.get("/v1/keys/set", headers=bearer(role_tokens["agent"]))
    assert resp.status_code == 409 and resp.mimetype == "application/problem+json"
