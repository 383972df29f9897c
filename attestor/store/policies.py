# SPDX-License-Identifier: Apache-2.0
"""Policy rows: one per id (current version, soft delete) and immutable versions.

Nothing here updates or deletes a version. Every change also bumps the
one-row ``policy_generation`` counter, which replicas poll to know when to
reload (``attestor.services.policy_db.DatabasePolicies``). Callers serialise
changes by taking the audit log's append lock first
(``attestor.store.audit.lock_chain``), so version numbers cannot race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from attestor.errors import ConfigError, NotFound
from attestor.store.models import PolicyGenerationModel, PolicyModel, PolicyVersionModel

__all__ = [
    "PolicyRow",
    "VersionRow",
    "add_version",
    "bump_generation",
    "current_documents",
    "generation",
    "get_policy",
    "get_version",
    "list_policies",
    "list_versions",
    "set_current",
    "set_deleted",
    "versions_with_label",
]

_GENERATION_ROW = 1


@dataclass(frozen=True)
class PolicyRow:
    """A policy id, its current version and whether it is deleted."""

    id: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class VersionRow:
    """One immutable version; ``document`` is the bytes exactly as given."""

    policy_id: str
    version: int
    document: bytes
    sha256: str
    label: str
    created_at: datetime
    created_by: str


def _policy(model: PolicyModel) -> PolicyRow:
    return PolicyRow(
        id=model.id,
        current_version=model.current_version,
        created_at=model.created_at,
        updated_at=model.updated_at,
        deleted_at=model.deleted_at,
    )


def _version(model: PolicyVersionModel) -> VersionRow:
    return VersionRow(
        policy_id=model.policy_id,
        version=model.version,
        document=model.document,
        sha256=model.sha256,
        label=model.label,
        created_at=model.created_at,
        created_by=model.created_by,
    )


def get_policy(session: Session, policy_id: str) -> PolicyRow | None:
    """The policy row, deleted or not; ``None`` when the id was never used."""
    model = session.get(PolicyModel, policy_id)
    return None if model is None else _policy(model)


def list_policies(session: Session, *, include_deleted: bool = False) -> list[PolicyRow]:
    """Policies ordered by id."""
    query = select(PolicyModel).order_by(PolicyModel.id)
    if not include_deleted:
        query = query.where(PolicyModel.deleted_at.is_(None))
    return [_policy(m) for m in session.scalars(query)]


def get_version(session: Session, policy_id: str, version: int) -> VersionRow:
    """One version.

    Raises:
        NotFound: no such policy or version.
    """
    model = session.get(PolicyVersionModel, (policy_id, version))
    if model is None:
        raise NotFound(
            f"policy {policy_id[:80]!r} has no version {version}",
            detail={"policy": policy_id[:80], "version": version},
        )
    return _version(model)


def list_versions(session: Session, policy_id: str) -> list[VersionRow]:
    """Every version of a policy, oldest first."""
    query = (
        select(PolicyVersionModel)
        .where(PolicyVersionModel.policy_id == policy_id)
        .order_by(PolicyVersionModel.version)
    )
    return [_version(m) for m in session.scalars(query)]


def versions_with_label(session: Session, policy_id: str, label: str) -> list[VersionRow]:
    """The versions whose document declares ``version: label``."""
    query = (
        select(PolicyVersionModel)
        .where(PolicyVersionModel.policy_id == policy_id, PolicyVersionModel.label == label)
        .order_by(PolicyVersionModel.version)
    )
    return [_version(m) for m in session.scalars(query)]


def add_version(
    session: Session,
    *,
    policy_id: str,
    document: bytes,
    sha256: str,
    label: str,
    created_by: str,
    now: datetime,
) -> VersionRow:
    """Store the next version and make it current (creating the policy row if new).

    A deleted policy comes back with this version.
    """
    model = session.get(PolicyModel, policy_id, with_for_update=True)
    if model is None:
        model = PolicyModel(
            id=policy_id, current_version=0, created_at=now, updated_at=now, deleted_at=None
        )
        session.add(model)
        session.flush()
        number = 1
    else:
        latest = session.scalar(
            select(PolicyVersionModel.version)
            .where(PolicyVersionModel.policy_id == policy_id)
            .order_by(PolicyVersionModel.version.desc())
            .limit(1)
        )
        number = int(latest or 0) + 1
    version = PolicyVersionModel(
        policy_id=policy_id,
        version=number,
        document=document,
        sha256=sha256,
        label=label,
        created_at=now,
        created_by=created_by,
    )
    session.add(version)
    model.current_version = number
    model.updated_at = now
    model.deleted_at = None
    session.flush()
    return _version(version)


def set_current(session: Session, policy_id: str, version: int, *, now: datetime) -> None:
    """Point the policy at an existing version and undelete it."""
    session.execute(
        update(PolicyModel)
        .where(PolicyModel.id == policy_id)
        .values(current_version=version, updated_at=now, deleted_at=None)
    )


def set_deleted(session: Session, policy_id: str, *, now: datetime) -> None:
    """Soft-delete: the versions stay, the policy leaves the set in force."""
    session.execute(
        update(PolicyModel)
        .where(PolicyModel.id == policy_id)
        .values(deleted_at=now, updated_at=now)
    )


def current_documents(session: Session) -> list[VersionRow]:
    """The current version of every policy that is not deleted, ordered by id."""
    query = (
        select(PolicyVersionModel)
        .join(
            PolicyModel,
            (PolicyModel.id == PolicyVersionModel.policy_id)
            & (PolicyModel.current_version == PolicyVersionModel.version),
        )
        .where(PolicyModel.deleted_at.is_(None))
        .order_by(PolicyModel.id)
    )
    return [_version(m) for m in session.scalars(query)]


def generation(session: Session) -> int:
    """The policy change counter (one primary-key read: the replicas' poll).

    Raises:
        ConfigError: the counter row is missing (the migrations have not run).
    """
    value = session.scalar(
        select(PolicyGenerationModel.generation).where(PolicyGenerationModel.id == _GENERATION_ROW)
    )
    if value is None:
        raise ConfigError("the policy generation row is missing; run the migrations")
    return int(value)


def bump_generation(session: Session) -> int:
    """Count one policy change, in the changing transaction.

    Raises:
        ConfigError: the counter row is missing.
    """
    value = session.execute(
        update(PolicyGenerationModel)
        .where(PolicyGenerationModel.id == _GENERATION_ROW)
        .values(generation=PolicyGenerationModel.generation + 1)
        .returning(PolicyGenerationModel.generation)
    ).scalar()
    if value is None:
        raise ConfigError("the policy generation row is missing; run the migrations")
    return int(value)
