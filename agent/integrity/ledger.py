# SPDX-License-Identifier: Apache-2.0
"""What the daemon remembers of each container between sweeps.

A tampered file is seen again by every sweep; it is reported once, when it
first appears (and again if it disappears and comes back). The ledger also
builds the container's provenance report: layers with their attestation
chain, the integrity history (bounded) and the anomalies reported so far.

With a path, the open findings of each container are kept on disk (atomic
write on change), so a restarted agent does not report the same tamper again.
History and anomalies are not kept: the reports already sent hold them.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent._fs import read_state, write_atomic
from agent.integrity.sweep import ContainerResult
from agent.report import ContainerReport, ImageRef, IntegrityCheck, LayerReport, Violation
from attestor.digests import Digest
from attestor.errors import InvalidInput
from attestor.json_strict import loads_strict

__all__ = ["ContainerLedger", "Ledger", "LedgerUpdate", "fingerprint"]

log = logging.getLogger("attestor.agent")

#: The report schema's caps on ``history`` and ``anomalies``.
MAX_HISTORY = 1000
MAX_ANOMALIES = 1000
#: The schema's cap on a check's ``error``.
_MAX_ERROR = 1000
#: Largest ledger file read (10,000 containers with a few findings each).
_MAX_FILE_BYTES = 64 * 1024 * 1024
_VERSION = 1

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
    #: None while the image digest is unknown (an image gone before the agent
    #: saw it): no provenance report can name the image then, but its
    #: findings are still reported.
    image: ImageRef | None
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
    """All containers' memories, keyed by ``namespace/id``.

    Args:
        path: where open findings persist (None: in memory only).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._containers: dict[tuple[str, str], ContainerLedger] = {}
        self._path = path
        #: Findings restored from disk, by container, until it is seen again.
        self._restored: dict[tuple[str, str], set[Fingerprint]] = {}

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Load the findings a previous run reported; a bad file is logged and ignored.

        Ignoring a damaged file can only re-report findings (the server
        de-duplicates nothing then, but loses nothing either).
        """
        ledger = cls(path)
        ledger._restored = read_state(path, _parse, what="ledger") or {}
        return ledger

    def keys(self) -> frozenset[tuple[str, str]]:
        """``(namespace, container id)`` of every container still remembered."""
        return frozenset(self._containers)

    def get(self, namespace: str, container_id: str) -> ContainerLedger | None:
        """The memory of one container, if any."""
        return self._containers.get((namespace, container_id))

    def image_digests(self, namespace: str) -> dict[str, Digest]:
        """Container id -> image digest of each remembered container of ``namespace``.

        Named in the finding when a container's image disappears from containerd.
        """
        return {
            cid: entry.image.digest
            for (ns, cid), entry in self._containers.items()
            if ns == namespace and entry.image is not None
        }

    def record(self, result: ContainerResult) -> LedgerUpdate:
        """Fold one sweep's result in; return only what is new."""
        c = result.container
        key = (c.namespace, c.id)
        entry = self._containers.get(key)
        fresh = entry is None
        if entry is None:
            image = None if c.image_digest is None else ImageRef(c.image_name, c.image_digest)
            entry = ContainerLedger(c.namespace, image)
            entry.open_findings = self._restored.pop(key, set())
            self._containers[key] = entry
        layers = tuple(r.report() for r in result.layers)
        changed = fresh or layers != entry.layers
        entry.layers = layers
        entry.history.extend(result.checks)
        seen = {fingerprint(v): v for v in result.violations}
        new = tuple(v for fp, v in seen.items() if fp not in entry.open_findings)
        if set(seen) != entry.open_findings:
            entry.open_findings = set(seen)
            self._save()
        entry.anomalies.extend(new)
        return LedgerUpdate(c.id, new, changed or bool(new))

    def unreport(self, namespace: str, container_id: str, violation: Violation) -> None:
        """Take back a finding that could not be spooled: the next sweep reports it again."""
        entry = self._containers.get((namespace, container_id))
        if entry is not None and fingerprint(violation) in entry.open_findings:
            entry.open_findings.discard(fingerprint(violation))
            self._save()

    def note_error(self, message: str, *, now: datetime) -> list[tuple[str, str]]:
        """Add an error check (e.g. a revocation feed anomaly) to every container's history.

        Returns:
            The keys of the containers whose report changed.
        """
        check = IntegrityCheck(
            checked_at=now,
            scope="layer",
            layer_digest=None,
            result="error",
            files_checked=0,
            violations=0,
            full_rehash=False,
            error=message[:_MAX_ERROR],
        )
        for entry in self._containers.values():
            entry.history.append(check)
        return list(self._containers)

    def report(
        self, namespace: str, container_id: str, *, now: datetime, finalized: bool = False
    ) -> ContainerReport | None:
        """The provenance report of a remembered container (None: unknown, or image unknown)."""
        entry = self._containers.get((namespace, container_id))
        if entry is None or entry.image is None:
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
        dropped = self._containers.pop((namespace, container_id), None)
        restored = self._restored.pop((namespace, container_id), None)
        if dropped is not None or restored is not None:
            self._save()

    def forget_absent(self, listed: Iterable[tuple[str, str]]) -> None:
        """Forget restored findings of containers containerd no longer lists."""
        keep = set(listed)
        gone = [k for k in self._restored if k not in keep]
        for key in gone:
            del self._restored[key]
        if gone:
            self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        findings = {k: e.open_findings for k, e in self._containers.items()}
        findings.update((k, v) for k, v in self._restored.items() if k not in findings)
        doc = {
            "version": _VERSION,
            "containers": [
                {"namespace": ns, "id": cid, "findings": sorted(map(list, fps), key=str)}
                for (ns, cid), fps in sorted(findings.items())
                if fps
            ],
        }
        try:
            write_atomic(self._path, _dumps(doc))
        except OSError as e:
            # The violations are already spooled; a lost ledger write only
            # means a restart may report these findings once more.
            log.error("ledger not saved", extra={"path": str(self._path), "error": e.strerror})


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _parse(data: bytes) -> dict[tuple[str, str], set[Fingerprint]]:
    """Raises: InvalidInput, TooLarge: the file is not a ledger of this version."""
    doc = loads_strict(data, what="agent ledger", max_bytes=_MAX_FILE_BYTES, integers_only=True)
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        raise InvalidInput(f"agent ledger: not version {_VERSION}")
    containers = doc.get("containers")
    if not isinstance(containers, list):
        raise InvalidInput("agent ledger: containers must be a list")
    out: dict[tuple[str, str], set[Fingerprint]] = {}
    for item in containers:
        if not isinstance(item, dict):
            raise InvalidInput("agent ledger: a container must be an object")
        ns, cid, findings = item.get("namespace"), item.get("id"), item.get("findings")
        if not isinstance(ns, str) or not isinstance(cid, str) or not isinstance(findings, list):
            raise InvalidInput("agent ledger: container needs namespace, id and findings")
        fps: set[Fingerprint] = set()
        for f in findings:
            if (
                not isinstance(f, list)
                or len(f) != 4
                or not isinstance(f[2], str)
                or not all(x is None or isinstance(x, str) for x in f)
            ):
                raise InvalidInput(f"agent ledger: bad finding {str(f)[:80]}")
            fps.add((f[0], f[1], f[2], f[3]))
        out[(ns, cid)] = fps
    return out
