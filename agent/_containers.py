# SPDX-License-Identifier: Apache-2.0
"""The daemon's container bookkeeping across containerd namespaces.

Lists every covered container of every namespace each sweep, and tells the
live ones from those that ended: a stopped task, or no task any more after
one was seen running. An ended container is finalized once, and stays
finalized (skipped) until containerd forgets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence

from agent.containerd import ContainerdClient, ImageLayers
from agent.containerd.types import TaskStatus
from agent.integrity.inventory import ContainerFilter, TrackedContainer, list_tracked
from attestor.digests import Digest

__all__ = ["ContainerBook", "Key"]

log = logging.getLogger("attestor.agent")

#: (namespace, container id)
Key = tuple[str, str]

_RUNNING = (TaskStatus.RUNNING, TaskStatus.PAUSED, TaskStatus.PAUSING)


class ContainerBook:
    """Which covered containers are live, which ended, which are finalized.

    Args:
        clients: containerd client by namespace.
        selector: the mode's container filter.
    """

    def __init__(
        self, clients: Mapping[str, ContainerdClient], *, selector: ContainerFilter
    ) -> None:
        self._clients = clients
        self._selector = selector
        # Resolved image layers, reused across sweeps (see list_tracked).
        self._image_layers: dict[str, ImageLayers] = {}
        self._finalized: set[Key] = set()
        self._was_running: set[Key] = set()

    def inventory(
        self, known_digests: Callable[[str], Mapping[str, Digest]]
    ) -> list[TrackedContainer]:
        """Every covered container of every namespace.

        Args:
            known_digests: namespace -> (container id -> image digest seen
                before), named in the finding when an image record is gone.

        Raises:
            UpstreamError: containerd could not list a namespace. The sweep
                fails (logged, retried at the next interval): a namespace
                taken as empty would finalize its containers and reset their
                pending clocks, so a listing failure would restart the grace
                period of every layer.
        """
        tracked: list[TrackedContainer] = []
        for client in self._clients.values():
            found, problems = list_tracked(
                client,
                selector=self._selector,
                image_cache=self._image_layers,
                known_digests=known_digests(client.namespace),
            )
            for problem in problems:
                log.warning("container skipped", extra={"error": problem})
            tracked.extend(found)
        return tracked

    def split(
        self, tracked: Sequence[TrackedContainer], listed: Collection[Key]
    ) -> tuple[list[TrackedContainer], list[Key]]:
        """The live containers to check, and the keys of those that ended.

        Finalized containers are in neither. ``listed`` is the key of every
        container of ``tracked``; a finalized key that containerd no longer
        lists is forgotten.
        """
        self._finalized &= set(listed)
        ended: list[Key] = []
        live: list[TrackedContainer] = []
        for c in tracked:
            key = (c.namespace, c.id)
            if key in self._finalized:
                continue
            if c.task_status in _RUNNING:
                self._was_running.add(key)
            if c.task_status is TaskStatus.STOPPED or (
                c.task_status is None and key in self._was_running
            ):
                ended.append(key)
            else:
                live.append(c)
        return live, ended

    def finalized(self, key: Key) -> None:
        """``key`` got its final report: skip it until containerd forgets it."""
        self._was_running.discard(key)
        self._finalized.add(key)
