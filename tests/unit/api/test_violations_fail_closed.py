# SPDX-License-Identifier: Apache-2.0
"""The server stores and filters the agent's fail-closed kinds like any other."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.unit.api.test_violations_api import listing, post, violation


def test_unscannable_and_unverified_are_stored_and_filtered(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    items = [
        violation(
            kind="unscannable",
            path="etc/bad\\xff",
            detail={"scope": "layer", "reason": "name is not valid UTF-8"},
        ),
        # A whole upperdir that could not be walked: no layer, no path.
        violation(
            kind="unscannable",
            path=None,
            layer_digest=None,
            detail={"scope": "upperdir", "reason": "snapshot has more than 1000000 entries"},
        ),
        violation(kind="unverified", path=None, detail={"reason": "no verified attestation"}),
    ]
    response = post(client, role_tokens["agent"], items)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": 3, "duplicates": 0}
    page = listing(client, role_tokens["admin"], "?kind=unscannable")
    assert sorted((v["path"] or "", v["detail"]["scope"]) for v in page["items"]) == [
        ("", "upperdir"),
        ("etc/bad\\xff", "layer"),
    ]
    (unverified,) = listing(client, role_tokens["admin"], "?kind=unverified")["items"]
    assert unverified["id"] == items[2]["id"]
