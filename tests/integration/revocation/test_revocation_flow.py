# SPDX-License-Identifier: Apache-2.0
"""Revocation end to end: real issuance, the agent's feed path, sweeps on real rq."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from agent.revocation import FeedFollower
from agent.server import FeedResponse, ServerClient
from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.dsse import Envelope, Signature, parse_envelope
from attestor.errors import VerificationError
from attestor.jobs.reverify import PERIODIC_JOB_ID, schedule_periodic_sweep
from attestor.jobs.runner import InlineRunner, RQRunner
from attestor.revocation import RevocationSet
from attestor.revocation_feed import verify_feed_page
from attestor.store import jobs as job_store
from attestor.store import tokens as token_store
from attestor.store.models import JobModel
from attestor.verify import TrustedKey, Verifier
from tests.conftest import REPO_ROOT
from tests.unit.api._revocation_rows import seed_world, statuses

pytestmark = pytest.mark.integration


def _bearer(app: Flask, role: str) -> dict[str, str]:
    with app_state(app).session_factory.begin() as session:
        plaintext, _ = token_store.create_token(
            session,
            role=role,
            agent_id="node-1" if role == "agent" else None,
            now=datetime.now(UTC),
        )
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(env: dict[str, str]) -> Flask:
        policies = tmp_path / "policies"
        policies.mkdir(exist_ok=True)
        shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
        full = {
            "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
            "ATTESTOR_POLICY_DIR": str(policies),
            **env,
        }
        app = create_app(load_settings(full), overrides={"TESTING": True})
        apps.append(app)
        return app

    yield make
    for app in apps:
        state = app_state(app)
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


def test_issued_image_revoked_everywhere(
    make_app: Callable[..., Flask], registry: Any, sample_image: Any
) -> None:
    app = make_app({"ATTESTOR_INSECURE_REGISTRIES": registry.host})
    client = app.test_client()
    admin, pipeline, agent = (_bearer(app, r) for r in ("admin", "pipeline", "agent"))
    issued = client.post("/v1/attestations", json={"image": sample_image.by_tag}, headers=pipeline)
    assert issued.status_code == 201, issued.get_json()
    attestations = issued.get_json()["attestations"]
    assert attestations and all(a["status"] == "valid" for a in attestations)
    first = attestations[0]
    envelope = client.get(first["envelope_url"], headers=agent).get_data()
    keys = [
        TrustedKey.from_pem(k["public_key_pem"], keyid=k["keyid"])
        for k in client.get("/v1/keys", headers=agent).get_json()["keys"]
    ]
    # Before: the agent's verifier, fed by the feed, accepts the envelope.
    now = datetime.now(UTC)
    page = verify_feed_page(
        client.get("/v1/revocations/feed", headers=agent).data,
        keys,
        expected_since=0,
        now=now,
        max_age=timedelta(minutes=15),
    )
    revset = RevocationSet(page.revocations)
    Verifier(keys=keys, revocations=revset).verify_envelope(
        envelope, artifact_digest=first["layer"]["digest"]
    )

    revoked = client.post(
        "/v1/revocations",
        json={"target": {"kind": "image", "digest": sample_image.manifest_digest},
              "reason": "builder compromised"},
        headers=admin,
    )  # fmt: skip
    assert revoked.status_code == 201, revoked.get_json()
    assert revoked.get_json()["affected"] == len(attestations)
    # Every read says revoked.
    listed = client.get(
        f"/v1/attestations?image_digest={sample_image.manifest_digest}", headers=pipeline
    ).get_json()["items"]
    assert {a["status"] for a in listed} == {"revoked"}
    assert client.get(f"/v1/attestations/{first['id']}", headers=agent).get_json()["status"] == (
        "revoked"
    )
    # The agent learns it from the next page and its verifier refuses the envelope.
    after = verify_feed_page(
        client.get(f"/v1/revocations/feed?since={page.next}", headers=agent).data,
        keys,
        expected_since=page.next,
        now=now,
        max_age=timedelta(minutes=15),
        expected_feed_id=page.feed_id,
        known_latest=page.latest,
    )
    revset = revset.with_added(after.revocations)
    with pytest.raises(VerificationError) as caught:
        Verifier(keys=keys, revocations=revset).verify_envelope(
            envelope, artifact_digest=first["layer"]["digest"]
        )
    assert caught.value.detail["revoked"] is True
    assert caught.value.message == "revoked: builder compromised"


def test_an_attestation_revocation_reaches_the_agent_for_reserialized_copies(
    make_app: Callable[..., Flask], registry: Any, sample_image: Any, tmp_path: Path
) -> None:
    """The agent's FeedFollower, fed by this server's real feed endpoint, revokes
    a copy of the revoked envelope whose keyid was changed and that carries a
    junk signature: the feed names the attestation by what is signed."""
    app = make_app({"ATTESTOR_INSECURE_REGISTRIES": registry.host})
    client = app.test_client()
    admin, pipeline, agent = (_bearer(app, r) for r in ("admin", "pipeline", "agent"))
    issued = client.post("/v1/attestations", json={"image": sample_image.by_tag}, headers=pipeline)
    assert issued.status_code == 201, issued.get_json()
    first = issued.get_json()["attestations"][0]
    stored = parse_envelope(client.get(first["envelope_url"], headers=agent).get_data())
    copy = Envelope(
        stored.payload_type,
        stored.payload,
        (replace(stored.signatures[0], keyid="not-the-server"), Signature("junk", b"\x04" * 64)),
    )
    keys = [
        TrustedKey.from_pem(k["public_key_pem"], keyid=k["keyid"])
        for k in client.get("/v1/keys", headers=agent).get_json()["keys"]
    ]

    def fetch(since: int, limit: int, etag: str | None) -> FeedResponse:
        answer = client.get(f"/v1/revocations/feed?since={since}&limit={limit}", headers=agent)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return FeedResponse(body=answer.get_data(), etag=answer.headers.get("ETag"))

    follower = FeedFollower(
        ServerClient("http://127.0.0.1:9", "unused", timeout=1),
        keys,
        tmp_path / "agent-state",
        max_age=timedelta(minutes=15),
        clock=lambda: datetime.now(UTC),
        fetch=fetch,
    )
    revoked = client.post(
        "/v1/revocations",
        json={"target": {"kind": "attestation", "attestation_id": first["id"]},
              "reason": "withdrawn"},
        headers=admin,
    )  # fmt: skip
    assert revoked.status_code == 201, revoked.get_json()
    assert revoked.get_json()["target"]["pae_sha256"] == stored.pae_sha256()
    result = follower.poll()
    assert result.anomaly is None and result.revset.version == 1
    for envelope in (stored, copy):
        with pytest.raises(VerificationError, match="^revoked: withdrawn$"):
            Verifier(keys=keys, revocations=result.revset).verify_envelope(
                envelope.to_json(), artifact_digest=first["layer"]["digest"]
            )


def _work(runner: RQRunner) -> None:
    from rq import SimpleWorker

    queue = runner.queue
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)


def test_sweeps_on_rq_after_a_key_revocation_and_on_schedule(
    make_app: Callable[..., Flask],
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app({"REDIS_URL": redis_url})
    state = app_state(app)
    runner = state.runner
    assert isinstance(runner, RQRunner)
    # rq_entry (run by the worker below) builds its settings from the environment.
    for key, value in {
        "REDIS_URL": redis_url,
        "ATTESTOR_DATA_DIR": str(state.settings.data_dir),
        "ATTESTOR_POLICY_DIR": str(state.settings.policy_dir),
    }.items():
        monkeypatch.setenv(key, value)
    world = seed_world(state.session_factory, state.settings.keys_dir)
    client = app.test_client()
    admin = _bearer(app, "admin")
    response = client.post(
        "/v1/revocations",
        json={"target": {"kind": "key", "keyid": world.key}, "reason": "leaked"},
        headers=admin,
    )
    assert response.status_code == 201
    job_id = response.get_json()["reverify_job"]
    assert statuses(state.session_factory, world) == {
        "a1": "revoked", "a2": "revoked", "a3": "revoked", "a4": "valid",
    }  # fmt: skip
    _work(runner)
    job = client.get(f"/v1/jobs/{job_id}", headers=admin).get_json()
    assert job["status"] == "finished", job
    assert job["result"] == {"scope": "key", "checked": 0, "revoked": 0}

    # The periodic sweep: scheduled on rq, moved to the queue by rq's scheduler.
    from rq.scheduler import RQScheduler

    schedule_periodic_sweep(runner.queue, interval=timedelta(seconds=1))
    scheduled = runner.queue.scheduled_job_registry.get_job_ids()
    assert any(i.startswith(PERIODIC_JOB_ID) for i in scheduled)
    time.sleep(1.2)
    scheduler = RQScheduler(
        [runner.queue], connection=runner.queue.connection, serializer=runner.queue.serializer
    )
    assert scheduler.acquire_locks()
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    _work(runner)  # runs periodic_sweep_entry: submits a sweep, schedules the next
    _work(runner)  # runs the sweep
    with state.session_factory() as session:
        sweeps = [
            job_store.get_job(session, m.id)
            for m in session.query(JobModel).filter(JobModel.kind == "reverify")
        ]
    alls = [j for j in sweeps if j.payload == {"scope": "all"}]
    assert len(alls) == 1
    assert alls[0].status == "finished", alls[0].error
    assert alls[0].result == {"scope": "all", "checked": 1, "revoked": 0}
    assert any(
        i.startswith(PERIODIC_JOB_ID) for i in runner.queue.scheduled_job_registry.get_job_ids()
    )
    assert tmp_path.exists()
