# SPDX-License-Identifier: Apache-2.0
"""What the daemon remembers of each container between sweeps.

A tampered file is seen again by every sweep; it is reported once, when it
first appears (and again if it disappears and comes back). The ledger also
builds the container's provenance report: layers with their attestation
chain, the integrity history (bounded) and the anomalies reported so far.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from agent.integrity.sweep import ContainerResult
from agent.report import ContainerReport, ImageRef, IntegrityCheck, LayerReport, Violation

__all__ = ["ContainerLedger", "Ledger", "LedgerUpdate", "fingerprint"]

#: The report schema's caps on ``history`` and ``anomalies``.
MAX_HISTORY = 1000
MAX_ANOMALIES = 1000

Fingerprint = tuple[str | None, str | None, str, str | None]


def fingerprint(violation: Violation) -> Fingerprint:
    """What makes two sightings the same finding (the id and time do not)."""
    actual = violation.detail.get("actual")
    return (
        violation.layer_digest,
        violation.path,
        violation.kind,
        actual if isinstance(actual, str) else None,
    )


@dataclass
class ContainerLedger:
    """One container's memory."""

    namespace: str
    image: ImageRef
    layers: tuple[LayerReport, ...] = ()
    open_findings: set[Fingerprint] = field(default_factory=set)
    history: deque[IntegrityCheck] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))
    anomalies: deque[Violation] = field(default_factory=lambda: deque(maxlen=MAX_ANOMALIES))
    finalized: bool = False


@dataclass(frozen=True)
class LedgerUpdate:
    """What changed for a container in one sweep."""

    container_id: str
    new_violations: tuple[Violation, ...]
    report_changed: bool


class Ledger:
    """All containers' memories, keyed by ``namespace/id``."""

    def __init__(self) -> None:
        self._containers: dict[tuple[str, str], ContainerLedger] = {}

    def keys(self) -> frozenset[tuple[str, str]]:
        """``(namespace, container id)`` of every container still remembered."""
        return frozenset(self._containers)

    def get(self, namespace: str, container_id: str) -> ContainerLedger | None:
        """The memory of one container, if any."""
        return self._containers.get((namespace, container_id))

    def record(self, result: ContainerResult) -> LedgerUpdate:
        """Fold one sweep's result in; return only what is new."""
        c = result.container
        key = (c.namespace, c.id)
        entry = self._containers.get(key)
        fresh = entry is None
        if entry is None:
            entry = ContainerLedger(c.namespace, ImageRef(c.image_name, c.image_digest))
            self._containers[key] = entry
        layers = tuple(r.report() for r in result.layers)
        changed = fresh or layers != entry.layers
        entry.layers = layers
        entry.history.extend(result.checks)
        seen = {fingerprint(v): v for v in result.violations}
        new = tuple(v for fp, v in seen.items() if fp not in entry.open_findings)
        entry.open_findings = set(seen)
        entry.anomalies.extend(new)
        return LedgerUpdate(c.id, new, changed or bool(new))

    def report(
        self, namespace: str, container_id: str, *, now: datetime, finalized: bool = False
    ) -> ContainerReport | None:
        """The provenance report of a remembered container."""
        entry = self._containers.get((namespace, container_id))
        if entry is None:
            return None
        return ContainerReport(
            container_id=container_id,
            image=entry.image,
            layers=entry.layers,
            history=tuple(entry.history),
            anomalies=tuple(entry.anomalies),
            finalized=finalized,
            generated_at=now,
            namespace=namespace,
        )

    def drop(self, namespace: str, container_id: str) -> None:
        """Forget a finalized container."""
        self._containers.pop((namespace, container_id), None)
