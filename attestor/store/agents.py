# SPDX-License-Identifier: Apache-2.0
"""Node agents: registration (an upsert), heartbeats and the silent-node listing.

An agent's id is the one its token is bound to; the API passes it in, never a
value from a request body. "Last seen" is the later of the last registration
and the last heartbeat: an agent that just restarted is alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from attestor.errors import InvalidInput, NotFound
from attestor.store._dialect import upsert_insert
from attestor.store.models import AgentModel

__all__ = [
    "AGENT_MODES",
    "AgentRow",
    "get_agent",
    "list_agents",
    "record_heartbeat",
    "register_agent",
]

AGENT_MODES = ("node", "sidecar")


@dataclass(frozen=True, kw_only=True)
class AgentRow:
    """An agent as stored."""

    id: str
    hostname: str
    mode: str
    version: str
    namespaces: tuple[str, ...]
    registered_at: datetime
    last_registered_at: datetime | None
    last_heartbeat_at: datetime | None
    containers: int | None
    layers: int | None
    pending_violations: int | None

    @property
    def last_seen_at(self) -> datetime:
        """The later of the last registration and the last heartbeat."""
        seen = self.last_registered_at or self.registered_at
        if self.last_heartbeat_at is not None and self.last_heartbeat_at > seen:
            return self.last_heartbeat_at
        return seen

    def is_silent(self, *, now: datetime, silent_for: timedelta) -> bool:
        """Whether nothing was heard from the agent for ``silent_for`` or longer."""
        return now - self.last_seen_at >= silent_for


def _row(m: AgentModel) -> AgentRow:
    return AgentRow(
        id=m.id,
        hostname=m.hostname,
        mode=m.mode,
        version=m.version,
        namespaces=tuple(m.namespaces or ()),
        registered_at=m.registered_at,
        last_registered_at=m.last_registered_at,
        last_heartbeat_at=m.last_heartbeat_at,
        containers=m.containers,
        layers=m.layers,
        pending_violations=m.pending_violations,
    )


def get_agent(session: Session, agent_id: str) -> AgentRow:
    """One agent.

    Raises:
        NotFound: The agent never registered.
    """
    model = session.get(AgentModel, agent_id)
    if model is None:
        raise NotFound(f"agent {agent_id[:255]!r} is not registered")
    return _row(model)


def register_agent(
    session: Session,
    *,
    agent_id: str,
    hostname: str,
    mode: str,
    version: str,
    namespaces: Sequence[str],
    now: datetime,
) -> AgentRow:
    """Insert the agent or update its details (concurrency-safe upsert).

    ``registered_at`` keeps the first registration; ``last_registered_at`` is ``now``.

    Raises:
        InvalidInput: Unknown mode or empty id.
    """
    if mode not in AGENT_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(AGENT_MODES)}, got {mode!r}")
    if not agent_id:
        raise InvalidInput("agent_id must not be empty")
    values = {
        "hostname": hostname,
        "mode": mode,
        "version": version,
        "namespaces": list(namespaces),
        "last_registered_at": now,
    }
    stmt = upsert_insert(session, AgentModel).values(id=agent_id, registered_at=now, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
    # The upsert bypassed the identity map; read the row as the database has it.
    session.expire_all()
    return get_agent(session, agent_id)


def record_heartbeat(
    session: Session,
    agent_id: str,
    *,
    containers: int,
    layers: int,
    pending_violations: int,
    now: datetime,
) -> AgentRow:
    """Store a heartbeat and the counters it carries.

    Raises:
        NotFound: The agent never registered (it must register again, e.g.
            after the server's database was restored).
    """
    model = session.get(AgentModel, agent_id)
    if model is None:
        raise NotFound(f"agent {agent_id[:255]!r} is not registered; register first")
    model.last_heartbeat_at = now
    model.containers = containers
    model.layers = layers
    model.pending_violations = pending_violations
    session.flush()
    return _row(model)


def list_agents(
    session: Session,
    *,
    now: datetime,
    silent_for: timedelta | None = None,
) -> list[AgentRow]:
    """Agents ordered by id; with ``silent_for``, only those silent that long.

    Raises:
        InvalidInput: ``silent_for`` is negative.
    """
    query = select(AgentModel).order_by(AgentModel.id)
    if silent_for is not None:
        if silent_for < timedelta(0):
            raise InvalidInput(f"silent_for must not be negative, got {silent_for}")
        cutoff = now - silent_for
        registered = func.coalesce(AgentModel.last_registered_at, AgentModel.registered_at)
        # last_seen <= cutoff, where last_seen = max(registered, last heartbeat).
        query = query.where(
            and_(
                registered <= cutoff,
                or_(
                    AgentModel.last_heartbeat_at.is_(None),
                    AgentModel.last_heartbeat_at <= cutoff,
                ),
            )
        )
    return [_row(m) for m in session.scalars(query)]
