# SPDX-License-Identifier: Apache-2.0
"""What the agent covers: containers of a containerd namespace, resolved to layers.

Node mode covers every container; sidecar mode only those of one pod (the
CRI label ``io.kubernetes.pod.uid``) or those matching a label selector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.containerd import ImageLayers, LayerInfo, resolve_image_layers
from agent.containerd.layers import ContainerSource, ImageSource
from agent.containerd.types import Container, Task, TaskStatus
from attestor.digests import Digest
from attestor.errors import Error, NotFound

__all__ = [
    "POD_UID_LABEL",
    "ContainerFilter",
    "InventoryClient",
    "TrackedContainer",
    "list_tracked",
]

#: Label the CRI plugin puts on every container of a pod.
POD_UID_LABEL = "io.kubernetes.pod.uid"


class InventoryClient(ImageSource, ContainerSource, Protocol):
    """The containerd calls :func:`list_tracked` makes."""

    def list_containers(self, filters: tuple[str, ...] = ()) -> list[Container]: ...

    def get_task(self, container_id: str) -> Task: ...


@dataclass(frozen=True)
class ContainerFilter:
    """Which containers to cover; empty means all (node mode)."""

    pod_uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, container: Container) -> bool:
        """True when ``container`` is covered."""
        if self.pod_uid is not None and container.labels.get(POD_UID_LABEL) != self.pod_uid:
            return False
        return all(container.labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class TrackedContainer:
    """A covered container with its image layers (bottom first) and rw layer."""

    namespace: str
    id: str
    image_name: str
    image_digest: Digest
    layers: tuple[LayerInfo, ...]
    upperdir: Path | None
    task_status: TaskStatus | None
    labels: Mapping[str, str] = field(default_factory=dict)


def _task_status(client: InventoryClient, container_id: str) -> TaskStatus | None:
    try:
        return client.get_task(container_id).status
    except NotFound:
        return None


def list_tracked(
    client: InventoryClient,
    *,
    selector: ContainerFilter | None = None,
    image_cache: dict[str, ImageLayers] | None = None,
) -> tuple[list[TrackedContainer], list[str]]:
    """Resolve every covered container of the client's namespace.

    Args:
        client: a :class:`~agent.containerd.ContainerdClient`.
        selector: sidecar-mode filter; None covers all.
        image_cache: image name + target digest -> resolved layers, reused
            across sweeps (the view dance costs a few gRPC calls per image).

    Returns:
        The tracked containers, and one message per container that could not
        be resolved (it is skipped this sweep).

    Raises:
        UpstreamError: containerd failed to list containers.
    """
    selector = selector or ContainerFilter()
    cache = image_cache if image_cache is not None else {}
    tracked: list[TrackedContainer] = []
    errors: list[str] = []
    for container in client.list_containers():
        if not selector.matches(container):
            continue
        try:
            image = client.get_image(container.image)
            key = f"{container.image}@{image.target_digest}"
            layers = cache.get(key)
            # Re-resolve when a directory is gone: the image was removed and
            # unpacked again under new snapshot numbers.
            if layers is None or any(
                x.snapshot_dir is None or not x.snapshot_dir.is_dir() for x in layers.layers
            ):
                layers = resolve_image_layers(
                    client, container.image, snapshotter=container.snapshotter or None
                )
                cache[key] = layers
            mounts = client.mounts(
                container.snapshot_key, snapshotter=container.snapshotter or None
            )
            upper = next((m.upperdir for m in mounts if m.upperdir is not None), None)
            tracked.append(
                TrackedContainer(
                    namespace=client.namespace,
                    id=container.id,
                    image_name=container.image,
                    image_digest=image.target_digest,
                    layers=layers.layers,
                    upperdir=upper,
                    task_status=_task_status(client, container.id),
                    labels=dict(container.labels),
                )
            )
        except Error as e:
            errors.append(f"container {client.namespace}/{container.id}: {e.message}")
    return tracked, errors
