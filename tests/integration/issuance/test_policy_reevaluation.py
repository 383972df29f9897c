# SPDX-License-Identifier: Apache-2.0
"""A policy changed through the API re-evaluates the attestations issued under it at once."""

from __future__ import annotations

import time
import uuid
from typing import Any

from attestor.api._state import app_state
from attestor.jobs.runner import InlineRunner
from attestor.registry import RegistryClient
from attestor.services.policy_db import PROPAGATION_BOUND_S
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server


def _dev_policy(version: str, repositories: list[str]) -> str:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    rules = "".join(
        f'  - host: "{h}"\n    require_signatures: false\n    repositories: {repositories}\n'
        for h in hosts
    )
    return (
        "apiVersion: attestor.dev/v1alpha1\nkind: Policy\nid: dev\n"
        f'version: "{version}"\nregistries:\n{rules}'
    ).replace("'", '"')


def _wait_for_jobs(server: Server) -> None:
    runner = app_state(server.app).runner
    assert isinstance(runner, InlineRunner)
    runner.wait(timeout=120)


def test_a_narrowed_policy_revokes_what_it_no_longer_admits_at_once(
    server: Server, pusher: RegistryClient, registry: Any
) -> None:
    kept = push(pusher, f"{registry.host}/reeval/kept-{uuid.uuid4().hex[:8]}", "v1", layers=1)
    dropped = push(pusher, f"{registry.host}/reeval/gone-{uuid.uuid4().hex[:8]}", "v1", layers=1)
    ids = {}
    for name, image in (("kept", kept), ("dropped", dropped)):
        answer = server.issue(image.by_digest)
        assert answer.status_code == 201, answer.get_json()
        ids[name] = answer.get_json()["attestations"][0]["id"]
        assert server.get(f"/v1/attestations/{ids[name]}").get_json()["policy"]["version"] == "1"

    changed = server.client.put(
        "/v1/policies/dev",
        json={"document": _dev_policy("2", ["reeval/kept-*"])},
        headers=server.admin,
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["outcome"] == "updated"
    _wait_for_jobs(server)

    gone = server.get(f"/v1/attestations/{ids['dropped']}").get_json()
    assert gone["status"] == "revoked"
    assert server.get(f"/v1/attestations/{ids['kept']}").get_json()["status"] == "valid"


def test_a_dry_run_gives_the_decision_and_issues_nothing(
    server: Server, pusher: RegistryClient, registry: Any
) -> None:
    image = push(pusher, f"{registry.host}/reeval/dry-{uuid.uuid4().hex[:8]}", "v1", layers=1)
    before = server.counts()

    def dry_run(reference: str) -> Any:
        return server.client.post(
            "/v1/policies/evaluate", json={"image": reference}, headers=server.pipeline
        )

    admitted = dry_run(image.by_digest)
    assert admitted.status_code == 200, admitted.get_json()
    body = admitted.get_json()
    assert body["allowed"] is True
    assert body["image"] == image.by_digest.split("@")[0]
    assert body["decision"]["allowed"] is True

    changed = server.client.put(
        "/v1/policies/dev",
        json={"document": _dev_policy("2", ["elsewhere/*"])},
        headers=server.admin,
    )
    assert changed.status_code == 200, changed.get_json()
    # The dry run answers as issuance would: from the process's policy source,
    # which follows a change within its bound.
    deadline = time.monotonic() + PROPAGATION_BOUND_S
    refused = dry_run(image.by_digest).get_json()
    while refused["allowed"] and time.monotonic() < deadline:
        time.sleep(0.1)
        refused = dry_run(image.by_digest).get_json()
    assert refused["allowed"] is False
    assert refused["decision"]["allowed"] is False
    assert server.counts() == before  # nothing issued, nothing stored

    bad = dry_run("not a reference")
    assert bad.status_code == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
