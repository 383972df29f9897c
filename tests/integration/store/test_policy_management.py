# SPDX-License-Identifier: Apache-2.0
"""Policy versions, rollback, soft delete and their audit rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from attestor.errors import ConfigError, Conflict, InvalidInput, NotFound
from attestor.services import audit, policies, policy_import
from attestor.store import audit as audit_store
from attestor.store import policies as policy_store
from attestor.store.db import make_session_factory
from attestor.store.models import AuditLogModel, PolicyModel, PolicyVersionModel
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
ACTOR = "token:admin-1"


def _count(session: Session, model: type[object]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_versions_are_immutable_and_identical_bytes_add_none(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    v1, v2 = policy_doc(label="1"), policy_doc(label="2", host="q.example")
    with factory.begin() as s:
        created = policies.create(s, v1, actor=ACTOR, now=NOW)
    assert (created.outcome, created.policy.version, created.policy.label) == ("created", 1, "1")
    assert created.policy.sha256 == hashlib.sha256(v1).hexdigest()
    with factory.begin() as s:
        same = policies.update(s, "team", v1, actor=ACTOR, now=NOW + timedelta(seconds=1))
        changed = policies.update(s, "team", v2, actor=ACTOR, now=NOW + timedelta(seconds=2))
    assert (same.outcome, same.policy.version) == ("unchanged", 1)
    assert (changed.outcome, changed.policy.version) == ("updated", 2)
    with factory() as s:
        stored = policy_store.list_versions(s, "team")
        assert [(v.version, v.document, v.created_by) for v in stored] == [
            (1, v1, ACTOR),
            (2, v2, ACTOR),
        ]
        # Only two changes were audited: the unchanged update wrote nothing.
        assert [e.action for e in audit_store.iter_entries(s)] == [
            "policy.create",
            "policy.update",
        ]
        assert policy_store.generation(s) == 2


def test_rollback_makes_a_new_version_with_the_old_content(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    v1, v2 = policy_doc(label="1"), policy_doc(label="2", host="q.example")
    with factory.begin() as s:
        policies.create(s, v1, actor=ACTOR, now=NOW)
        policies.update(s, "team", v2, actor=ACTOR, now=NOW)
        back = policies.rollback(s, "team", 1, actor="cli:ops", now=NOW)
        again = policies.rollback(s, "team", 1, actor="cli:ops", now=NOW)
    assert (back.outcome, back.policy.version, back.policy.label) == ("rolled-back", 3, "1")
    assert again.outcome == "unchanged"
    with factory() as s:
        assert policy_store.get_version(s, "team", 3).document == v1
        assert policies.get(s, "team").document == v1.decode()
        last = list(audit_store.iter_entries(s))[-1]
        assert (last.action, last.actor, last.target) == (
            "policy.rollback",
            "cli:ops",
            "policy:team",
        )
        assert json.loads(last.change)["from_version"] == 1
        text = policies.diff(s, "team", from_version=2, to_version=3)
    assert '-  - host: "q.example"' in text
    assert '+  - host: "r.example"' in text


def test_a_label_names_one_content(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        policies.create(s, policy_doc(label="1"), actor=ACTOR, now=NOW)
    with pytest.raises(Conflict, match="version '1' is already stored"), factory.begin() as s:
        policies.update(s, "team", policy_doc(label="1", host="q.example"), actor=ACTOR, now=NOW)
    with factory() as s:
        assert _count(s, PolicyVersionModel) == 1
        assert _count(s, AuditLogModel) == 1


def test_delete_is_soft_and_a_create_revives(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        policies.create(s, policy_doc(), actor=ACTOR, now=NOW)
        policies.delete(s, "team", actor=ACTOR, now=NOW)
    with factory() as s:
        assert policies.list_policies(s) == []
        assert [p.deleted for p in policies.list_policies(s, include_deleted=True)] == [True]
        assert policy_store.current_documents(s) == []
        with pytest.raises(NotFound):
            policies.get(s, "team")
        assert [v.version for v in policies.versions(s, "team")] == [1]
    with pytest.raises(NotFound), factory.begin() as s:
        policies.delete(s, "team", actor=ACTOR, now=NOW)
    with factory.begin() as s:
        revived = policies.create(s, policy_doc(), actor=ACTOR, now=NOW)
    assert (revived.outcome, revived.policy.version, revived.policy.deleted) == (
        "created",
        2,
        False,
    )


def test_invalid_document_stores_nothing(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    bad = policy_doc().replace(b"registries", b"registriez")
    with pytest.raises(InvalidInput) as caught, factory.begin() as s:
        policies.create(s, bad, actor=ACTOR, now=NOW)
    errors = caught.value.detail["errors"]
    assert isinstance(errors, list) and errors
    assert all(set(e) == {"pointer", "message"} for e in errors)
    assert any("registri" in e["message"] for e in errors)
    with pytest.raises(InvalidInput), factory.begin() as s:
        policies.update(s, "team", policy_doc(policy_id="other"), actor=ACTOR, now=NOW)
    with factory() as s:
        assert (_count(s, PolicyModel), _count(s, PolicyVersionModel)) == (0, 0)
        assert _count(s, AuditLogModel) == 0
        assert policy_store.generation(s) == 0


def test_a_change_whose_audit_row_fails_is_not_stored(db_engine: Engine) -> None:
    """The version and its audit row share one transaction: either both or neither."""
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        # A row past the head (as a bad restore leaves): the next append collides.
        s.add(
            AuditLogModel(
                seq=1,
                created_at=NOW,
                actor="x",
                action="key.create",
                target="key:k",
                change="{}",
                prev_hash="f" * 64,
                hash="e" * 64,
            )
        )
    with pytest.raises(Conflict, match="audit row 1 exists"), factory.begin() as s:
        policies.create(s, policy_doc(), actor=ACTOR, now=NOW)
    with factory() as s:
        assert (_count(s, PolicyModel), _count(s, PolicyVersionModel)) == (0, 0)
        assert policy_store.generation(s) == 0
        assert audit_store.head(s) == (0, audit_store.GENESIS_HASH)
    with pytest.raises(InvalidInput, match="audit actor"), factory.begin() as s:
        policies.create(s, policy_doc(), actor="x" * 300, now=NOW)


def test_an_audited_change_that_fails_later_leaves_no_audit_row(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with pytest.raises(RuntimeError), factory.begin() as s:
        policies.create(s, policy_doc(), actor=ACTOR, now=NOW)
        assert _count(s, AuditLogModel) == 1  # written inside the transaction...
        raise RuntimeError("the caller fails after the change")
    with factory() as s:  # ...and gone with it
        assert _count(s, AuditLogModel) == 0
        assert _count(s, PolicyModel) == 0
        assert audit.verify_chain(s).ok


def test_import_files_is_all_or_nothing(db_engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(db_engine)
    (tmp_path / "a.yaml").write_bytes(policy_doc("a"))
    (tmp_path / "b.json").write_bytes(
        json.dumps(
            {
                "apiVersion": "attestor.dev/v1alpha1",
                "kind": "Policy",
                "id": "b",
                "version": "1",
                "registries": [{"host": "b.example", "require_signatures": False}],
            }
        ).encode()
    )
    (tmp_path / "notes.txt").write_text("not a policy")
    files = policy_import.read_policy_files(tmp_path)
    assert [Path(n).name for n, _ in files] == ["a.yaml", "b.json"]
    with factory.begin() as s:
        first = policy_import.import_files(s, files, actor="startup", now=NOW)
    assert [a.outcome for _, a in first] == ["created", "created"]
    with factory.begin() as s:
        second = policy_import.import_files(s, files, actor="startup", now=NOW)
    assert [a.outcome for _, a in second] == ["unchanged", "unchanged"]
    (tmp_path / "a.yaml").write_bytes(policy_doc("a", label="2", host="a2.example"))
    (tmp_path / "c.yaml").write_bytes(b"kind: Policy\n")
    with pytest.raises(ConfigError, match="c.yaml"), factory.begin() as s:
        files = policy_import.read_policy_files(tmp_path)
        policy_import.import_files(s, files, actor="startup", now=NOW)
    with factory() as s:
        assert policies.get(s, "a").version == 1  # a.yaml's change was not stored either
        assert _count(s, AuditLogModel) == 2


def test_unknown_ids_and_versions_are_not_found(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        policies.create(s, policy_doc(), actor=ACTOR, now=NOW)
    with factory() as s:
        for call in (
            lambda: policies.get(s, "nope"),
            lambda: policies.get(s, "BAD\x00ID"),
            lambda: policies.version(s, "team", 2),
            lambda: policies.version(s, "team", 2**70),
            lambda: policies.diff(s, "team", from_version=1, to_version=9),
        ):
            with pytest.raises(NotFound):
                call()


def test_the_start_up_import_applies_the_directory(db_engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(db_engine)
    (tmp_path / "a.yaml").write_bytes(policy_doc("a"))
    first = policy_import.import_directory(factory, tmp_path, now=NOW)
    again = policy_import.import_directory(factory, tmp_path, now=NOW)
    assert [(a.policy.id, a.outcome) for _, a in first] == [("a", "created")]
    assert [(a.policy.id, a.outcome) for _, a in again] == [("a", "unchanged")]
    with factory() as s:
        [entry] = list(audit_store.iter_entries(s))
    assert (entry.actor, entry.action) == (policy_import.IMPORT_ACTOR, "policy.create")
    with pytest.raises(ConfigError, match="cannot read"):
        policy_import.import_directory(factory, tmp_path / "missing", now=NOW)
