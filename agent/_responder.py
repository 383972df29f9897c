# SPDX-License-Identifier: Apache-2.0
"""The daemon's responses: the configured one on a new violation, the fail mode
for containers started during a revocation feed anomaly, and retries.

A pause or kill that containerd failed (busy, restarting) is tried again at
each sweep until it is done: the violation was reported once, and the ledger
would not answer it a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from agent.containerd import ContainerdClient
from agent.integrity.inventory import TrackedContainer
from agent.response import ResponseMode, respond

__all__ = ["Responder"]

log = logging.getLogger("attestor.agent")

Key = tuple[str, str]


class Responder:
    """Applies responses through each namespace's containerd client.

    Args:
        clients: containerd client by namespace.
        response: the mode applied to a container with a new violation.
        fail_mode: the mode applied to containers started during a feed anomaly.
    """

    def __init__(
        self,
        clients: Mapping[str, ContainerdClient],
        *,
        response: ResponseMode,
        fail_mode: ResponseMode,
    ) -> None:
        self._clients = clients
        self._response = response
        self._fail_mode = fail_mode
        #: Containers seen by the last full sweep (None before the first).
        self._seen: set[Key] | None = None
        #: Containers whose pause or kill failed, with the mode to retry.
        self._unanswered: dict[Key, ResponseMode] = {}

    def respond(self, container: TrackedContainer, mode: ResponseMode | None = None) -> None:
        """Apply ``mode`` (default: the configured response) to ``container``; never raises."""
        mode = mode or self._response
        if mode == "alert":
            return
        outcome = respond(self._clients[container.namespace], container.id, mode)
        key = (container.namespace, container.id)
        if outcome.failed:
            self._unanswered[key] = mode
        else:
            self._unanswered.pop(key, None)
        log.warning(
            "response",
            extra={
                "container_id": container.id,
                "namespace": container.namespace,
                "mode": outcome.mode,
                "acted": outcome.acted,
                "outcome": outcome.message,
            },
        )

    def retry(self, live: Sequence[TrackedContainer], listed: Collection[Key]) -> None:
        """Try again every failed response of a container still live."""
        for key in [k for k in self._unanswered if k not in listed]:
            del self._unanswered[key]
        for c in live:
            mode = self._unanswered.get((c.namespace, c.id))
            if mode is not None:
                self.respond(c, mode)

    def new_containers(self, live: Sequence[TrackedContainer], *, anomalous: bool) -> None:
        """Apply the fail mode to containers new since the last full sweep, during an anomaly."""
        keys = {(c.namespace, c.id) for c in live}
        if self._seen is None:  # the first sweep is the baseline, not "new"
            self._seen = keys
            return
        new = [c for c in live if (c.namespace, c.id) not in self._seen]
        self._seen = keys
        if not anomalous:
            return
        for c in new:
            log.warning(
                "container started while the revocation feed is anomalous",
                extra={"container_id": c.id, "namespace": c.namespace},
            )
            self.respond(c, self._fail_mode)
