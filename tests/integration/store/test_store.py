# SPDX-License-Identifier: Apache-2.0
"""Store functions on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from attestor.errors import Conflict, InvalidInput, NotFound
from attestor.store import jobs, signing_keys, tokens
from attestor.store.db import current_revision, make_session_factory, ping
from attestor.store.models import (
    AttestationModel,
    Base,
    FileManifestModel,
    ImageModel,
    TokenModel,
)
from tests.alembic_head import head_revision

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_schema_is_at_head_and_matches_models(db_engine: Engine) -> None:
    ping(db_engine)
    assert current_revision(db_engine) == head_revision()
    with db_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_tokens_stored_only_as_hashes(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        plaintext, row = tokens.create_token(s, role="pipeline", name="ci", now=NOW)
    with factory() as s:
        stored = s.scalars(select(TokenModel)).one()
        values = [str(getattr(stored, c.key)) for c in TokenModel.__table__.columns]
    assert plaintext.startswith("att_")
    assert all(plaintext not in v for v in values)
    assert stored.token_hash == tokens.hash_token(plaintext)
    with factory.begin() as s:
        auth = tokens.authenticate(s, plaintext, now=NOW + timedelta(minutes=5))
        assert tokens.authenticate(s, plaintext + "x", now=NOW) is None
    assert auth is not None
    assert auth.id == row.id
    assert auth.role == "pipeline"
    assert auth.last_used_at == NOW + timedelta(minutes=5)


def test_agent_token_binding_and_revocation(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        with pytest.raises(InvalidInput, match="agent_id"):
            tokens.create_token(s, role="agent", now=NOW)
        with pytest.raises(InvalidInput, match="role"):
            tokens.create_token(s, role="root", now=NOW)
        admin_plain, admin = tokens.create_token(s, role="admin", now=NOW)
        plain, agent = tokens.create_token(s, role="agent", agent_id="node-1", now=NOW)
    assert agent.agent_id == "node-1"
    with factory.begin() as s:
        revoked = tokens.revoke_token(s, agent.id, now=NOW)
        assert revoked.revoked_at == NOW
        assert tokens.authenticate(s, plain, now=NOW) is None
        with pytest.raises(Conflict, match="last active admin"):
            tokens.revoke_token(s, admin.id, now=NOW)
        with pytest.raises(NotFound):
            tokens.revoke_token(s, "nope", now=NOW)
        assert {t.id for t in tokens.list_tokens(s)} == {admin.id, agent.id}
        assert [t.id for t in tokens.list_tokens(s, include_revoked=False)] == [admin.id]
        assert tokens.count_tokens(s) == 1


def test_ensure_token_is_idempotent(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    secret = "s" * 40
    with factory.begin() as s:
        a = tokens.ensure_token(s, secret, role="admin", now=NOW)
    with factory.begin() as s:
        b = tokens.ensure_token(s, secret, role="admin", now=NOW + timedelta(hours=1))
        with pytest.raises(Conflict):
            tokens.ensure_token(s, secret, role="pipeline", now=NOW)
    assert a.id == b.id
    with factory() as s:
        assert tokens.count_tokens(s, active_only=False) == 1


def test_job_lifecycle(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        job = jobs.create_job(s, kind="echo", payload={"a": [1, 2]}, created_by="t1", now=NOW)
        assert jobs.count_jobs(s) == 1
    assert job.status == "queued"
    assert job.progress == {"total": 0, "done": 0, "verified": 0, "rejected": 0}
    with factory.begin() as s:
        jobs.update_job(s, job.id, status="running", now=NOW + timedelta(seconds=1))
        jobs.update_job(s, job.id, progress={"total": 3, "done": 1}, now=NOW)
        done = jobs.update_job(
            s, job.id, status="finished", result={"ok": True}, now=NOW + timedelta(seconds=2)
        )
        with pytest.raises(InvalidInput, match="already finished"):
            jobs.update_job(s, job.id, status="running", now=NOW)
        with pytest.raises(InvalidInput):
            jobs.update_job(s, job.id, status="paused", now=NOW)
    assert done.started_at == NOW + timedelta(seconds=1)
    assert done.finished_at == NOW + timedelta(seconds=2)
    with factory() as s:
        got = jobs.get_job(s, job.id)
        assert jobs.count_jobs(s) == 0
        with pytest.raises(NotFound):
            jobs.get_job(s, "missing")
    assert got.progress == {"total": 3, "done": 1, "verified": 0, "rejected": 0}
    assert got.result == {"ok": True}
    assert got.payload == {"a": [1, 2]}


def test_one_active_signing_key(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        assert signing_keys.active_key(s) is None
        signing_keys.add_active_key(
            s,
            keyid="k1",
            algorithm="ecdsa-p256",
            public_key_pem="P",
            signer_uri="file:///k1",
            now=NOW,
        )
        with pytest.raises(Conflict, match="already active"):
            signing_keys.add_active_key(
                s, keyid="k2", algorithm="ed25519", public_key_pem="P", signer_uri="u", now=NOW
            )
        with pytest.raises(InvalidInput):
            signing_keys.add_active_key(
                s, keyid="k3", algorithm="rsa", public_key_pem="P", signer_uri="u", now=NOW
            )
    with factory() as s:
        active = signing_keys.active_key(s)
    assert active is not None
    assert active.keyid == "k1"


def test_attestation_constraints(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        signing_keys.add_active_key(
            s, keyid="k1", algorithm="ed25519", public_key_pem="P", signer_uri="u", now=NOW
        )
        s.add(
            ImageModel(
                id="i1",
                registry_host="127.0.0.1:5000",
                repository="app",
                tag="v1",
                manifest_digest="sha256:" + "a" * 64,
                media_type="application/vnd.oci.image.manifest.v1+json",
                requested_reference="127.0.0.1:5000/app:v1",
                created_at=NOW,
            )
        )
        s.add(
            FileManifestModel(
                sha256="sha256:" + "b" * 64,
                tree_digest="sha256:" + "c" * 64,
                body=b"{}",
                entry_count=0,
                created_at=NOW,
            )
        )

    def attestation(id_: str, image_id: str = "i1") -> AttestationModel:
        return AttestationModel(
            id=id_,
            image_id=image_id,
            layer_index=0,
            layer_digest="sha256:" + "d" * 64,
            layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            diff_id="sha256:" + "e" * 64,
            chain_id="sha256:" + "e" * 64,
            parent_id=None,
            envelope=b'{"payload": "x"}',
            envelope_sha256="f" * 64,
            pae_sha256="a" * 64,
            keyid="k1",
            policy_id="dev",
            policy_version="1",
            manifest_sha256="sha256:" + "b" * 64,
            tree_digest="sha256:" + "c" * 64,
            invocation_id="inv",
            status="valid",
            created_at=NOW,
        )

    with factory.begin() as s:
        s.add(attestation("a1"))
    with factory() as s:
        stored = s.get(AttestationModel, "a1")
        assert stored is not None
        assert stored.envelope == b'{"payload": "x"}'
    with pytest.raises(IntegrityError), factory.begin() as s:
        s.add(attestation("a2"))  # same image, layer, key and policy
    with pytest.raises(IntegrityError), factory.begin() as s:
        s.add(attestation("a3", image_id="no-such-image"))  # foreign keys are enforced
