# SPDX-License-Identifier: Apache-2.0
"""Central policy management: immutable versions, rollback, diff, directory import.

Every change runs in the caller's transaction together with its audit row
(``attestor.services.audit.record``) and a bump of the policy generation
that replicas poll, so the three commit or roll back together. Changes take
the audit log's append lock first, which serialises them: version numbers
cannot race.

A document's own ``version`` field is what attestations record, so one
label names one content: storing other bytes under a label this policy
already used is refused (409); change the document's ``version``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from attestor.errors import Conflict, InvalidInput, NotFound
from attestor.policy import Policy, parse_policy
from attestor.services import audit
from attestor.store import audit as audit_store
from attestor.store import policies as store

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Applied",
    "PolicyView",
    "VersionView",
    "apply",
    "create",
    "delete",
    "diff",
    "document_errors",
    "get",
    "list_policies",
    "rollback",
    "update",
    "validate_document",
    "version",
    "versions",
]

#: Same cap as the policy loader's: larger is a mistake or an attack.
MAX_DOCUMENT_BYTES = 1024 * 1024
_MAX_DIFF_LINES = 20_000
_MAX_VERSION = 2**31 - 1
# The schema's id pattern: anything else names no policy (and never reaches SQL).
_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?\Z")

Outcome = Literal["created", "updated", "unchanged", "deleted", "rolled-back"]


@dataclass(frozen=True)
class VersionView:
    """One stored version, for the API and the CLI."""

    policy_id: str
    version: int
    sha256: str
    label: str
    created_at: datetime
    created_by: str
    document: str


@dataclass(frozen=True)
class PolicyView:
    """A policy and its current version."""

    id: str
    version: int
    label: str
    sha256: str
    created_at: datetime
    updated_at: datetime
    deleted: bool
    created_by: str
    document: str


@dataclass(frozen=True)
class Applied:
    """What a change did."""

    policy: PolicyView
    outcome: Outcome


def _text(document: bytes) -> str:
    # Documents are YAML or JSON, hence text; the stored bytes stay exact.
    return document.decode("utf-8", errors="replace")


def _version_view(row: store.VersionRow) -> VersionView:
    return VersionView(
        policy_id=row.policy_id,
        version=row.version,
        sha256=row.sha256,
        label=row.label,
        created_at=row.created_at,
        created_by=row.created_by,
        document=_text(row.document),
    )


def _view(policy: store.PolicyRow, current: store.VersionRow) -> PolicyView:
    return PolicyView(
        id=policy.id,
        version=current.version,
        label=current.label,
        sha256=current.sha256,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
        deleted=policy.deleted_at is not None,
        created_by=current.created_by,
        document=_text(current.document),
    )


def document_errors(error: InvalidInput) -> list[dict[str, str]]:
    """The ``{pointer, message}`` list of a parse error (one entry when it has none)."""
    found = error.detail.get("errors")
    if isinstance(found, list) and found:
        return [
            {"pointer": str(e.get("pointer", "")), "message": str(e.get("message", ""))}
            for e in found
            if isinstance(e, dict)
        ]
    return [{"pointer": "", "message": error.message}]


def validate_document(data: bytes, *, source: str) -> Policy:
    """Parse and validate one document with the policy engine's own parser.

    Raises:
        InvalidInput: it does not parse or meet the schema; ``detail["errors"]``
            lists ``{pointer, message}``.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"{source}: policy is {len(data)} bytes, limit {MAX_DOCUMENT_BYTES}",
            detail={"errors": [{"pointer": "", "message": "document too large"}]},
        )
    try:
        return parse_policy(data, source=source)
    except InvalidInput as e:
        raise InvalidInput(e.message, detail={"errors": document_errors(e)}) from e


def _load(session: Session, policy_id: str, *, deleted_ok: bool = False) -> store.PolicyRow:
    row = store.get_policy(session, policy_id) if _ID_RE.match(policy_id) else None
    if row is None or (row.deleted_at is not None and not deleted_ok):
        raise NotFound(f"no policy with id {policy_id[:80]!r}", detail={"policy": policy_id[:80]})
    return row


def _get_version(session: Session, policy_id: str, version: int) -> store.VersionRow:
    if not 1 <= version <= _MAX_VERSION:
        raise NotFound(
            f"policy {policy_id[:80]!r} has no version {version}",
            detail={"policy": policy_id[:80]},
        )
    return store.get_version(session, policy_id, version)


def _check_label(session: Session, policy: Policy, digest: str) -> None:
    for row in store.versions_with_label(session, policy.id, policy.version):
        if row.sha256 != digest:
            raise Conflict(
                f"policy {policy.id!r} version {policy.version!r} is already stored with "
                f"other content (version {row.version}); change the document's version",
                detail={"policy": policy.id, "label": policy.version, "version": row.version},
            )


def _store_new(
    session: Session,
    *,
    policy_id: str,
    data: bytes,
    label: str,
    action: str,
    extra: dict[str, object],
    actor: str,
    now: datetime,
) -> PolicyView:
    digest = hashlib.sha256(data).hexdigest()
    version = store.add_version(
        session,
        policy_id=policy_id,
        document=data,
        sha256=digest,
        label=label,
        created_by=actor,
        now=now,
    )
    generation = store.bump_generation(session)
    audit.record(
        session,
        actor=actor,
        action=action,
        target=f"policy:{policy_id}",
        change={
            "version": version.version,
            "sha256": digest,
            "label": label,
            "generation": generation,
            **extra,
        },
        now=now,
    )
    return _view(_load(session, policy_id), version)


def _put(
    session: Session,
    data: bytes,
    *,
    mode: Literal["create", "update", "apply"],
    actor: str,
    now: datetime,
    source: str,
    policy_id: str | None = None,
) -> Applied:
    audit_store.check_field("actor", actor)
    policy = validate_document(data, source=source)
    if policy_id is not None and policy.id != policy_id:
        raise InvalidInput(
            f"the document's id {policy.id!r} is not the policy {policy_id[:80]!r}",
            detail={"errors": [{"pointer": "/id", "message": "must equal the id in the path"}]},
        )
    audit_store.lock_chain(session)
    row = store.get_policy(session, policy.id)
    live = row is not None and row.deleted_at is None
    if mode == "create" and live:
        raise Conflict(f"policy {policy.id!r} exists; update it instead")
    if mode == "update" and not live:
        raise NotFound(f"no policy with id {policy.id!r}", detail={"policy": policy.id})
    digest = hashlib.sha256(data).hexdigest()
    previous: int | None = None
    if row is not None and live:
        current = store.get_version(session, row.id, row.current_version)
        if current.document == data:
            return Applied(_view(row, current), "unchanged")
        previous = current.version
    _check_label(session, policy, digest)
    view = _store_new(
        session,
        policy_id=policy.id,
        data=data,
        label=policy.version,
        action="policy.update" if live else "policy.create",
        extra={"previous_version": previous},
        actor=actor,
        now=now,
    )
    return Applied(view, "updated" if live else "created")


def create(session: Session, data: bytes, *, actor: str, now: datetime) -> Applied:
    """Store a new policy (or bring back a deleted id) as a new version.

    Raises:
        InvalidInput: the document is invalid (``detail["errors"]``).
        Conflict: the id exists, or its label is taken by other content.
    """
    return _put(session, data, mode="create", actor=actor, now=now, source="request")


def update(session: Session, policy_id: str, data: bytes, *, actor: str, now: datetime) -> Applied:
    """Store a new version of an existing policy; the same bytes change nothing.

    Raises:
        InvalidInput: the document is invalid, or names another id.
        NotFound: no such policy (or it is deleted).
        Conflict: its label is taken by other content.
    """
    return _put(
        session, data, mode="update", actor=actor, now=now, source="request", policy_id=policy_id
    )


def apply(session: Session, data: bytes, *, actor: str, now: datetime, source: str) -> Applied:
    """Create or update, like ``kubectl apply``: unchanged bytes change nothing.

    Raises:
        InvalidInput: the document is invalid.
        Conflict: its label is taken by other content.
    """
    return _put(session, data, mode="apply", actor=actor, now=now, source=source)


def delete(session: Session, policy_id: str, *, actor: str, now: datetime) -> None:
    """Soft-delete: the policy leaves the set in force; its versions stay.

    Raises:
        NotFound: no such policy, or already deleted.
    """
    audit_store.check_field("actor", actor)
    audit_store.lock_chain(session)
    row = _load(session, policy_id)
    store.set_deleted(session, policy_id, now=now)
    generation = store.bump_generation(session)
    audit.record(
        session,
        actor=actor,
        action="policy.delete",
        target=f"policy:{policy_id}",
        change={"version": row.current_version, "generation": generation},
        now=now,
    )


def rollback(
    session: Session, policy_id: str, version: int, *, actor: str, now: datetime
) -> Applied:
    """Make a new version whose content is that of ``version`` (also undeletes).

    Nothing changes when that content is already current. The old document
    is validated again: a document the engine no longer accepts is refused.

    Raises:
        NotFound: no such policy or version.
        InvalidInput: the old document is no longer valid.
    """
    audit_store.check_field("actor", actor)
    audit_store.lock_chain(session)
    row = _load(session, policy_id, deleted_ok=True)
    old = _get_version(session, policy_id, version)
    current = store.get_version(session, policy_id, row.current_version)
    if row.deleted_at is None and current.document == old.document:
        return Applied(_view(row, current), "unchanged")
    validate_document(old.document, source=f"{policy_id} version {version}")
    view = _store_new(
        session,
        policy_id=policy_id,
        data=old.document,
        label=old.label,
        action="policy.rollback",
        extra={"from_version": version, "previous_version": row.current_version},
        actor=actor,
        now=now,
    )
    return Applied(view, "rolled-back")


def list_policies(session: Session, *, include_deleted: bool = False) -> list[PolicyView]:
    """Policies ordered by id, with their current version."""
    return [
        _view(row, store.get_version(session, row.id, row.current_version))
        for row in store.list_policies(session, include_deleted=include_deleted)
    ]


def get(session: Session, policy_id: str) -> PolicyView:
    """One policy (not deleted) with its current document.

    Raises:
        NotFound: no such policy, or it is deleted.
    """
    row = _load(session, policy_id)
    return _view(row, store.get_version(session, policy_id, row.current_version))


def versions(session: Session, policy_id: str) -> list[VersionView]:
    """Every version of a policy (deleted ones too), oldest first.

    Raises:
        NotFound: the id was never used.
    """
    _load(session, policy_id, deleted_ok=True)
    return [_version_view(v) for v in store.list_versions(session, policy_id)]


def version(session: Session, policy_id: str, number: int) -> VersionView:
    """One version with its document (of a deleted policy too).

    Raises:
        NotFound: no such policy or version.
    """
    _load(session, policy_id, deleted_ok=True)
    return _version_view(_get_version(session, policy_id, number))


def diff(
    session: Session, policy_id: str, *, from_version: int | None, to_version: int | None
) -> str:
    """Unified diff of two versions' documents (default: the current one and the one before).

    Raises:
        NotFound: no such policy or version.
    """
    row = _load(session, policy_id, deleted_ok=True)
    to_v = row.current_version if to_version is None else to_version
    from_v = max(to_v - 1, 1) if from_version is None else from_version
    old = _get_version(session, policy_id, from_v)
    new = _get_version(session, policy_id, to_v)
    lines = difflib.unified_diff(
        _text(old.document).splitlines(keepends=True),
        _text(new.document).splitlines(keepends=True),
        fromfile=f"{policy_id}@{from_v}",
        tofile=f"{policy_id}@{to_v}",
    )
    out: list[str] = []
    for i, line in enumerate(lines):
        if i >= _MAX_DIFF_LINES:
            out.append(f"... diff cut at {_MAX_DIFF_LINES} lines\n")
            break
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)
