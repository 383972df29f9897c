# SPDX-License-Identifier: Apache-2.0
"""The issue job's registry client, policies and signers are built once per worker process.

Real PostgreSQL, Redis and registry. Counting goes through the seams the
worker state offers (its ``build_issue`` and the active key's ``load``), never
through patches of a library. A rotation or revocation between two jobs of
one process must still apply to the second one.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope
from sqlalchemy.orm import Session

from attestor.config import Settings, load_settings
from attestor.jobqueue import submit, utc_now
from attestor.jobs.issuance import ISSUE_KIND
from attestor.jobs.rq_worker import make_worker
from attestor.jobs.runner import InlineRunner, RQRunner
from attestor.jobs.worker_state import (
    IssueState,
    WorkerState,
    build_issue_state,
    build_worker_state,
    install_worker_state,
)
from attestor.registry import RegistryClient
from attestor.services import keys as key_service
from attestor.services.context import ActiveKeySigners
from attestor.services.keys import ActiveSigner, active_signer
from attestor.signing.keys import sslib_key
from attestor.store import attestations as attestation_store
from attestor.store import jobs as job_store
from attestor.store import signing_keys as key_store
from attestor.store.bootstrap import prepare
from attestor.store.db import make_engine
from tests.conftest import REPO_ROOT
from tests.harness.databases import fresh_postgres_database
from tests.integration.issuance._images import client_for, push


@dataclass
class Counts:
    """How often the worker state built its issue state and loaded a signing key."""

    builds: int = 0
    key_loads: int = 0


def counting_builder(counts: Counts) -> Callable[[Settings], IssueState]:
    """``build_issue_state``, counted, with the active key's loads counted too."""

    def load(session: Session) -> ActiveSigner:
        counts.key_loads += 1
        return active_signer(session)

    def build(settings: Settings) -> IssueState:
        counts.builds += 1
        state = build_issue_state(settings)
        adapters = replace(state.adapters, key_signers=ActiveKeySigners(load))
        return replace(state, adapters=adapters)

    return build


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url, prefix="worker_state") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, registry: Any, database_url: str, redis_url: str) -> Settings:
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    settings = load_settings(
        {
            "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
        }
    )
    engine = make_engine(settings.database_url)
    prepare(settings, engine, now=utc_now())
    engine.dispose()
    return settings


@pytest.fixture
def pusher(registry: Any, tmp_path: Path) -> RegistryClient:
    return client_for(registry.host, tmp_path / "push-cache")


@pytest.fixture
def image(registry: Any, pusher: RegistryClient) -> Callable[[], str]:
    """``image()``: a new one-layer image in the registry, by digest."""

    def make() -> str:
        return push(
            pusher, f"{registry.host}/workerstate/{uuid.uuid4().hex[:10]}", "v1", layers=1
        ).by_digest

    return make


@pytest.fixture
def worker_state(settings: Settings) -> Iterator[tuple[WorkerState, Counts]]:
    """A worker state as ``attestor worker`` installs it, with its builds counted."""
    counts = Counts()
    state = build_worker_state(settings, build_issue=counting_builder(counts))
    state.issue.get()
    install_worker_state(state)
    yield state, counts
    install_worker_state(None)
    state.dispose()


def _run_on_rq(state: WorkerState, images: list[str]) -> list[job_store.JobRow]:
    """Enqueue an issue job per image, run them all in one rq worker; their rows."""
    assert state.settings.redis_url is not None and state.redis is not None
    runner = RQRunner(state.settings.redis_url)
    ids = [
        submit(
            state.session_factory, runner, kind=ISSUE_KIND, payload={"image": i}, now=utc_now()
        ).id
        for i in images
    ]
    # The worker `attestor worker` runs: one process, every job in it.
    make_worker(state.redis).work(burst=True)
    with state.session_factory() as session:
        return [job_store.get_job(session, job_id) for job_id in ids]


def _envelope_keyids(state: WorkerState, job: job_store.JobRow) -> set[str]:
    assert job.result is not None, job.error
    keyids = set()
    with state.session_factory() as session:
        for summary in job.result["attestations"]:
            row = attestation_store.get_attestation(session, summary["id"])
            envelope = json.loads(row.envelope)
            keyids |= {s["keyid"] for s in envelope["signatures"]}
            # The signature verifies with the public key of the keyid it names.
            key = key_store.get_key(session, envelope["signatures"][0]["keyid"])
            Envelope.from_dict(envelope).verify([sslib_key(key.public_key_pem)], 1)
    return keyids


def _rotate(state: WorkerState) -> str:
    with state.session_factory.begin() as session:
        return key_service.rotate_key(
            session, keys_dir=state.settings.keys_dir, algorithm="ecdsa-p256", now=utc_now()
        ).keyid


def test_two_issue_jobs_on_rq_build_the_issue_state_once(
    worker_state: tuple[WorkerState, Counts], image: Callable[[], str]
) -> None:
    state, counts = worker_state
    first, second = _run_on_rq(state, [image(), image()])
    assert (first.status, second.status) == ("finished", "finished"), (first.error, second.error)
    assert [len(j.result["attestations"]) for j in (first, second) if j.result] == [1, 1]
    # Policies, registry client and keyless/managed signers: one build for both jobs,
    # the one made at start-up; the active key was loaded by the first job only.
    assert (counts.builds, counts.key_loads) == (1, 1)
    assert state.issue.get() is state.issue.get()


def test_rotation_between_two_jobs_of_one_worker_signs_with_the_new_key(
    worker_state: tuple[WorkerState, Counts], image: Callable[[], str]
) -> None:
    state, counts = worker_state
    with state.session_factory() as session:
        old = key_store.active_key(session)
    assert old is not None
    (first,) = _run_on_rq(state, [image()])
    assert _envelope_keyids(state, first) == {old.keyid}
    new = _rotate(state)
    (second,) = _run_on_rq(state, [image()])
    assert second.status == "finished", second.error
    assert new != old.keyid
    assert _envelope_keyids(state, second) == {new}
    assert (counts.builds, counts.key_loads) == (1, 2)


def test_revoked_active_key_stops_the_next_job_of_the_worker(
    worker_state: tuple[WorkerState, Counts], image: Callable[[], str]
) -> None:
    state, counts = worker_state
    (first,) = _run_on_rq(state, [image()])
    assert first.status == "finished", first.error
    with state.session_factory.begin() as session:
        active = key_store.active_key(session)
        assert active is not None
        key_service.revoke_key(session, active.keyid, reason="compromised", now=utc_now())
    (second,) = _run_on_rq(state, [image()])
    assert second.status == "failed"
    assert second.error is not None and "no active signing key" in second.error
    assert second.result is None
    # A new key rotated in signs the next job.
    new = _rotate(state)
    (third,) = _run_on_rq(state, [image()])
    assert _envelope_keyids(state, third) == {new}
    assert counts.builds == 1


def test_in_process_runner_builds_the_issue_state_at_start(
    settings: Settings, image: Callable[[], str]
) -> None:
    counts = Counts()
    state = build_worker_state(settings, build_issue=counting_builder(counts))
    runner = InlineRunner(settings, state.session_factory, issue_state=state.issue)
    with state.session_factory() as session:
        old = key_store.active_key(session)
    assert old is not None

    def issue() -> job_store.JobRow:
        job = submit(
            state.session_factory,
            runner,
            kind=ISSUE_KIND,
            payload={"image": image()},
            now=utc_now(),
        )
        runner.wait(timeout=120)
        with state.session_factory() as session:
            return job_store.get_job(session, job.id)

    try:
        runner.start()
        assert counts.builds == 1
        first, second = issue(), issue()
        new = _rotate(state)
        third = issue()
        assert [_envelope_keyids(state, j) for j in (first, second, third)] == [
            {old.keyid},
            {old.keyid},
            {new},
        ]
        assert (counts.builds, counts.key_loads) == (1, 2)
    finally:
        runner.shutdown()
        state.dispose()


def test_policy_file_changed_under_a_running_worker_is_not_read_by_its_jobs(
    worker_state: tuple[WorkerState, Counts], image: Callable[[], str]
) -> None:
    # The policy set is the one loaded at start-up (a change needs a restart,
    # as for `attestor serve`): a policy file broken meanwhile does not fail
    # the next job, which used to re-read the directory.
    state, _ = worker_state
    (state.settings.policy_dir / "dev.yaml").write_text("not: [a policy\n")
    (job,) = _run_on_rq(state, [image()])
    assert job.status == "finished", job.error
