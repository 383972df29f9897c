# SPDX-License-Identifier: Apache-2.0
"""Keyless issue jobs share one keyless signer per process, yet read the identity per job.

The in-process runner (the one ``attestor serve`` runs without Redis) with
the local Fulcio + Rekor mock: its keyless signer (trust config, signing
context) is built once at start, while the identity token is still read for
each job, so a new token or a revoked identity applies to the next job.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, load_settings
from attestor.errors import ConfigError
from attestor.jobqueue import submit, utc_now
from attestor.jobs.issuance import ISSUE_KIND
from attestor.jobs.runner import InlineRunner
from attestor.jobs.worker_state import IssueState, SharedIssueState, build_issue_state
from attestor.services import keys as key_service
from attestor.services.signers import keyless_keyid
from attestor.store import jobs as job_store
from attestor.store.bootstrap import prepare
from attestor.store.db import make_engine, make_session_factory
from tests.conftest import REPO_ROOT
from tests.harness.sigstore_stack import SigstoreStack
from tests.integration.issuance._images import client_for, push

ISSUER = "https://oidc.attestor.test"
FIRST = "https://kubernetes.io/namespaces/attestor/serviceaccounts/first"
SECOND = "https://kubernetes.io/namespaces/attestor/serviceaccounts/second"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(tmp_path: Path, registry: Any, sigstore_stack: SigstoreStack) -> Settings:
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    token = tmp_path / "token"
    token.write_text(sigstore_stack.mint_token(FIRST, ISSUER))
    return load_settings(
        {
            "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
            "ATTESTOR_SIGNING_MODE": "keyless",
            "ATTESTOR_KEYLESS_INSTANCE": "custom",
            "ATTESTOR_KEYLESS_TRUST_CONFIG": str(sigstore_stack.client_trust_config_path),
            "ATTESTOR_KEYLESS_TOKEN_FILE": str(token),
            # The mock has no Rekor v2.
            "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "1",
        }
    )


@dataclass
class Runner:
    inline: InlineRunner
    factory: sessionmaker[Session]
    #: Every issue state the runner built.
    built: list[IssueState]


@pytest.fixture
def runner(settings: Settings) -> Iterator[Runner]:
    engine = make_engine(settings.database_url)
    prepare(settings, engine, now=utc_now())
    factory = make_session_factory(engine)
    built: list[IssueState] = []

    def build(s: Settings) -> IssueState:
        built.append(build_issue_state(s))
        return built[-1]

    inline = InlineRunner(
        settings, factory, issue_state=SharedIssueState(settings, build=build), max_workers=1
    )
    yield Runner(inline=inline, factory=factory, built=built)
    inline.shutdown()
    engine.dispose()


def test_keyless_jobs_share_the_signer_and_follow_token_and_revocation(
    runner: Runner,
    settings: Settings,
    registry: Any,
    sigstore_stack: SigstoreStack,
    tmp_path: Path,
) -> None:
    inline, factory, built = runner.inline, runner.factory, runner.built
    pusher = client_for(registry.host, tmp_path / "push-cache")
    names = iter(range(10))

    def issue() -> job_store.JobRow:
        image = push(pusher, f"{registry.host}/keyless-worker/a{next(names)}", "v1", layers=1)
        job = submit(
            factory, inline, kind=ISSUE_KIND, payload={"image": image.by_digest}, now=utc_now()
        )
        inline.wait(timeout=60)
        with factory() as session:
            return job_store.get_job(session, job.id)

    def keyids(job: job_store.JobRow) -> set[str]:
        assert job.status == "finished", job.error
        assert job.result is not None
        return {a["keyid"] for a in job.result["attestations"]}

    inline.start()
    assert len(built) == 1
    keyless = built[0].adapters.keyless
    assert keyless is not None
    first = keyless_keyid(ISSUER, FIRST)
    assert keyids(issue()) == {first}
    # A new token (another service account) is read by the next job.
    assert settings.keyless_token_file is not None
    settings.keyless_token_file.write_text(sigstore_stack.mint_token(SECOND, ISSUER))
    second = keyless_keyid(ISSUER, SECOND)
    assert keyids(issue()) == {second}
    # Revoking the identity in use stops the next job.
    with factory.begin() as session:
        key_service.revoke_key(session, second, reason="token leaked", now=utc_now())
    refused = issue()
    assert refused.status == "failed"
    assert refused.error is not None and "revoked" in refused.error
    # One keyless signer for all three jobs.
    assert len(built) == 1 and built[0].adapters.keyless is keyless


def test_start_fails_on_a_bad_policy(settings: Settings, runner: Runner) -> None:
    inline, built = runner.inline, runner.built
    (settings.policy_dir / "dev.yaml").write_text("not: [a policy\n")
    with pytest.raises(ConfigError, match="invalid policy"):
        inline.start()
    assert built == []
