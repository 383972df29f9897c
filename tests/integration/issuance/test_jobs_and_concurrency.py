# SPDX-License-Identifier: Apache-2.0
"""Large images become jobs; concurrent identical requests store one set."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attestor.api._state import app_state
from attestor.registry import RegistryClient
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server


def test_large_image_answers_202_and_the_job_issues(
    make_server: Callable[..., Server], pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    server = make_server(env={"ATTESTOR_ISSUE_DEFER_ABOVE_BYTES": "1"})
    image = push(pusher, unique_name("large"), "v1", layers=3)
    counts = server.counts()
    accepted = server.issue(image.by_tag)
    assert accepted.status_code == 202, accepted.get_json()
    job = accepted.get_json()["job"]
    assert job["url"] == f"/v1/jobs/{job['id']}" and accepted.headers["Location"] == job["url"]
    app_state(server.app).runner.wait(timeout=60)  # type: ignore[attr-defined]
    done = server.get(job["url"]).get_json()
    assert done["status"] == "finished", done
    result = done["result"]
    assert result["created"] is True
    assert result["image"]["digest"] == image.manifest_digest
    assert [a["layer"]["digest"] for a in result["attestations"]] == list(image.layer_digests)
    assert server.counts() == (counts[0] + 1, counts[1] + 3, counts[2] + 3)
    # The blobs are cached now, so the same request is answered inline (and exists).
    again = server.issue(image.by_tag)
    assert again.status_code == 200
    assert [a["id"] for a in again.get_json()["attestations"]] == [
        a["id"] for a in result["attestations"]
    ]
    # Another caller (not admin) cannot see this pipeline's job.
    assert server.get(job["url"], server.agent).status_code == 404


def test_concurrent_identical_requests_store_one_set(
    make_server: Callable[..., Server], pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    server = make_server()
    image = push(pusher, unique_name("race"), "v1", layers=3)
    counts = server.counts()

    def issue(_: int) -> Any:
        client = server.app.test_client()
        response = client.post(
            "/v1/attestations", json={"image": image.by_tag}, headers=server.pipeline
        )
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(issue, range(4)))
    statuses = sorted(status for status, _ in results)
    assert statuses[0] in {200, 201} and set(statuses) <= {200, 201}, results
    assert statuses.count(201) == 1
    id_sets = {tuple(a["id"] for a in body["attestations"]) for _, body in results}
    assert len(id_sets) == 1
    assert server.counts() == (counts[0] + 1, counts[1] + 3, counts[2] + 3)


def test_repeated_layer_is_attested_per_position_and_stored_once(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    image = push(pusher, unique_name("repeat"), "v1", layers=3, repeat_first_layer=True)
    counts = server.counts()
    response = server.issue(image.by_tag)
    assert response.status_code == 201, response.get_json()
    items = response.get_json()["attestations"]
    assert len({a["layer"]["digest"] for a in items}) == 1 and len(items) == 3
    assert len({a["id"] for a in items}) == 3
    # One content-addressed manifest row for the three identical layers.
    assert server.counts() == (counts[0] + 1, counts[1] + 3, counts[2] + 1)
