# SPDX-License-Identifier: Apache-2.0
"""What the daemon hands to the server: sweep findings into the two spools.

New violations (per the ledger, so a finding is sent once) go to the
violation spool and get the configured response; a container whose report
changed, was finalized, or had an anomaly noted gets its report spooled. A
spool that cannot take a record (full disk) is logged and never raises: an
unspooled violation is unreported in the ledger, so it is new again at the
next sweep rather than lost.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from agent._responder import Responder
from agent.integrity.ledger import Ledger
from agent.integrity.sweep import ContainerResult, SweepResult
from agent.report import ContainerReport, Violation
from agent.spool import Spool
from attestor.errors import Error

__all__ = ["Recorder"]

log = logging.getLogger("attestor.agent")

#: Longest reason text carried into a trust-anomaly (well under the detail cap).
_MAX_REASON = 1000


class Recorder:
    """Spools the daemon's violations and container reports.

    Args:
        ledger: what was already reported, per container.
        violations: spool of ``Violation.to_dict()`` records.
        reports: spool of ``ContainerReport.to_dict()`` records.
        violation_wake: set when a violation is spooled (wakes its deliverer).
        report_wake: set when a report is spooled (wakes its deliverer).
        responder: applies the configured response to a container with a new violation.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        violations: Spool,
        reports: Spool,
        violation_wake: threading.Event,
        report_wake: threading.Event,
        responder: Responder,
    ) -> None:
        self._ledger = ledger
        self._violations = violations
        self._reports = reports
        self._violation_wake = violation_wake
        self._report_wake = report_wake
        self._responder = responder

    def record_all(self, result: SweepResult, now: datetime) -> None:
        """Spool what a sweep found that is new, respond, and log its failed checks."""
        for container in result.containers:
            self._record(container, now)
        for problem in result.errors:
            log.warning("check failed", extra={"error": problem})

    def _record(self, result: ContainerResult, now: datetime) -> None:
        container = result.container
        update = self._ledger.record(result)
        for v in update.new_violations:
            try:
                self._violations.put(v.to_dict())
            except Error as e:
                # A full disk must not lose the finding: it is new again next sweep.
                log.error("violation not spooled", extra={"violation_id": v.id, "error": e.message})
                self._ledger.unreport(container.namespace, container.id, v)
            log.warning(
                "violation",
                extra={
                    "violation_id": v.id,
                    "container_id": v.container_id,
                    "namespace": container.namespace,
                    "layer_digest": v.layer_digest,
                    "path": v.path,
                    "kind": v.kind,
                },
            )
        if update.new_violations:
            self._violation_wake.set()
            self._responder.respond(container)
        if update.report_changed:
            self.spool_report(self._ledger.report(container.namespace, container.id, now=now))

    def note_error(self, problem: str, now: datetime) -> None:
        """Note ``problem`` in every container's integrity history and spool their reports."""
        for key in self._ledger.note_error(problem, now=now):
            self.spool_report(self._ledger.report(*key, now=now))

    def spool_trust_anomaly(self, problem: str, now: datetime) -> None:
        """Spool a ``trust-anomaly`` violation: the server's key set was refused.

        A refused set (not a failed fetch) is spooled for the server, so it
        learns of it even through an outage. No response: the pins still hold
        and still check every layer.
        """
        anomaly = Violation.create(
            container_id=None,
            image_digest=None,
            layer_digest=None,
            path=None,
            kind="trust-anomaly",
            detected_at=now,
            detail={"source": "key-set", "reason": problem[:_MAX_REASON]},
        )
        try:
            self._violations.put(anomaly.to_dict())
            self._violation_wake.set()
        except Error as e:
            log.error("trust anomaly not spooled", extra={"error": e.message})

    def finalize(self, namespace: str, container_id: str, now: datetime) -> None:
        """Spool the container's final report and forget it in the ledger."""
        self.spool_report(self._ledger.report(namespace, container_id, now=now, finalized=True))
        self._ledger.drop(namespace, container_id)

    def spool_report(self, report: ContainerReport | None) -> None:
        """Spool ``report`` (None: the ledger had nothing to report)."""
        if report is None:
            return
        try:
            self._reports.put(report.to_dict())
        except Error as e:
            log.error(
                "report not spooled",
                extra={"container_id": report.container_id, "error": e.message},
            )
            return
        self._report_wake.set()
