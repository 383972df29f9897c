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


def test_an_unverified_container_may_name_no_image_digest_and_nothing_else_may(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    # A running container whose image containerd lost before the agent saw it.
    gone = violation(
        kind="unverified",
        image_digest=None,
        layer_digest=None,
        path=None,
        detail={"reason": "image reg/app:1 not checked: image not found"},
    )
    bad = violation(image_digest=None)  # a content finding must name its image
    refused = post(client, role_tokens["agent"], [gone, bad])
    assert refused.status_code == 422, refused.get_json()
    assert listing(client, role_tokens["admin"])["items"] == []  # nothing half-stored
    response = post(client, role_tokens["agent"], [gone])
    assert response.status_code == 200, response.get_json()
    (stored,) = listing(client, role_tokens["admin"], "?kind=unverified")["items"]
    assert (stored["id"], stored["image_digest"]) == (gone["id"], None)


def test_a_trust_anomaly_names_no_container_and_only_it_may(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    anomaly = violation(
        kind="trust-anomaly",
        container_id=None,
        image_digest=None,
        layer_digest=None,
        path=None,
        detail={"source": "key-set", "reason": "key set refused: not signed by a pinned key"},
    )
    for bad in (
        {**anomaly, "id": violation()["id"], "container_id": "ctr-1"},
        {**anomaly, "id": violation()["id"], "image_digest": violation()["image_digest"]},
        violation(container_id=None),  # a file finding always names its container
    ):
        refused = post(client, role_tokens["agent"], [bad])
        assert refused.status_code == 422, (bad, refused.get_json())
    assert listing(client, role_tokens["admin"])["items"] == []
    assert post(client, role_tokens["agent"], [anomaly]).status_code == 200
    (stored,) = listing(client, role_tokens["admin"], "?kind=trust-anomaly")["items"]
    assert (stored["id"], stored["container_id"], stored["image_digest"]) == (
        anomaly["id"], None, None,
    )  # fmt: skip
