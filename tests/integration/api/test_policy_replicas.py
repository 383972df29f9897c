# SPDX-License-Identifier: Apache-2.0
"""Two `attestor serve` on one database: a policy changed through one is in force for
issuance on the other within 5 s, without a restart (docs/api.md, "Policies")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from attestor.services.policy_db import PROPAGATION_BOUND_S
from tests.integration.api._replicas import Replica, two_replicas
from tests.integration.api._replicas import database_url as database_url  # noqa: F401 - a fixture
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
# Nothing listens there: an admitted image fails at the registry (502), a refused
# one before any connection (403 policy-denied), so each answer says which it was.
IMAGE = "127.0.0.1:9/team/app:1"
DENIED = "urn:attestor:problem:policy-denied"


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Replica, Replica, str]]:
    (tmp_path / "policies").mkdir()
    # A file at start: imported into the database (by the first replica; the
    # second finds it unchanged).
    (tmp_path / "policies" / "other.yaml").write_bytes(policy_doc("other", host="other.example"))
    with two_replicas(
        tmp_path, database_url, ATTESTOR_POLICY_DIR=str(tmp_path / "policies")
    ) as pair:
        yield pair


def _issue(replica: Replica, admin: str) -> tuple[int, str]:
    r = requests.post(
        replica.url + "/v1/attestations",
        json={"image": IMAGE},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    return r.status_code, r.json().get("type", "")


def _until(replica: Replica, admin: str, admitted: bool, started: float) -> float:
    """Seconds after ``started`` at which ``replica`` first answered as ``admitted`` says;
    after the bound, every answer (from either of its workers) must."""
    first = None
    while first is None:
        status, kind = _issue(replica, admin)
        if (kind != DENIED) == admitted:
            first = time.monotonic() - started
            break
        # Still the old state: refused by policy, or admitted and failed at the registry.
        assert (status, kind == DENIED) == ((502, False) if not admitted else (403, True))
        assert time.monotonic() - started < PROPAGATION_BOUND_S, "not in force within the bound"
        time.sleep(0.1)
    time.sleep(max(0.0, started + PROPAGATION_BOUND_S - time.monotonic()))
    for _ in range(6):
        assert (_issue(replica, admin)[1] != DENIED) == admitted
    return first


def test_a_policy_change_is_in_force_on_the_other_replica(
    replicas: tuple[Replica, Replica, str],
) -> None:
    first, second, admin = replicas
    headers = {"Authorization": f"Bearer {admin}"}
    listed = requests.get(second.url + "/v1/policies", headers=headers, timeout=10).json()
    assert [(p["id"], p["version"]) for p in listed["policies"]] == [("other", 1)]
    assert _issue(second, admin) == (403, DENIED)

    started = time.monotonic()
    document = policy_doc("team", host="127.0.0.1:9").decode()
    made = requests.post(
        first.url + "/v1/policies", json={"document": document}, headers=headers, timeout=10
    )
    assert made.status_code == 201, made.text
    assert _until(second, admin, admitted=True, started=started) < PROPAGATION_BOUND_S
    # Admitted: the registry client was allowed to try the host, and failed there.
    assert _issue(second, admin)[0] == 502

    started = time.monotonic()
    deleted = requests.delete(first.url + "/v1/policies/team", headers=headers, timeout=10)
    assert deleted.status_code == 204
    assert _until(second, admin, admitted=False, started=started) < PROPAGATION_BOUND_S

    started = time.monotonic()
    back = requests.post(
        second.url + "/v1/policies/team/rollback", json={"version": 1}, headers=headers, timeout=10
    )
    assert back.status_code == 200, back.text
    assert _until(first, admin, admitted=True, started=started) < PROPAGATION_BOUND_S
