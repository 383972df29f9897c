# SPDX-License-Identifier: Apache-2.0
"""What the agent covers: containers of a containerd namespace, resolved to layers.

Node mode covers every container; sidecar mode only those of one pod (the
CRI label ``io.kubernetes.pod.uid``) or those matching a label selector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.containerd import ImageLayers, LayerInfo, resolve_image_layers
from agent.containerd.layers import ContainerSource, ImageSource
from agent.containerd.types import Container, Image, SnapshotInfo, Task, TaskStatus
from attestor.digests import Digest
from attestor.errors import Error, InvalidInput, NotFound, VerificationError

__all__ = [
    "POD_UID_LABEL",
    "SUPPORTED_SNAPSHOTTERS",
    "ContainerFilter",
    "InventoryClient",
    "TrackedContainer",
    "list_tracked",
]

#: Label the CRI plugin puts on every container of a pod.
POD_UID_LABEL = "io.kubernetes.pod.uid"
#: Snapshotters whose layer directories the agent knows how to find and walk
#: (one directory per layer, the container's changes in an overlay upperdir).
SUPPORTED_SNAPSHOTTERS = frozenset({"overlayfs"})
#: Other image records tried when a container's image name no longer points
#: to the image its rootfs is built on (each costs a few containerd calls).
_MAX_CANDIDATES = 16


class InventoryClient(ImageSource, ContainerSource, Protocol):
    """The containerd calls :func:`list_tracked` makes."""

    def list_containers(self, filters: tuple[str, ...] = ()) -> list[Container]: ...

    def get_task(self, container_id: str) -> Task: ...

    def snapshot_stat(self, key: str, *, snapshotter: str | None = None) -> SnapshotInfo: ...

    def list_images(self, filters: Sequence[str] = ()) -> list[Image]: ...


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
    """A covered container with its image layers (bottom first) and rw layer.

    ``unresolved`` says why the container's image or snapshot could not be
    resolved (its image record deleted while it runs, a blob missing or not
    matching its digest, an unsupported snapshotter): it then has no layers,
    the sweep reports it as ``unverified``, and ``image_digest`` is the last
    digest the agent knew for it, or None.
    """

    namespace: str
    id: str
    image_name: str
    image_digest: Digest | None
    layers: tuple[LayerInfo, ...]
    upperdir: Path | None
    task_status: TaskStatus | None
    labels: Mapping[str, str] = field(default_factory=dict)
    unresolved: str | None = None


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
    known_digests: Mapping[str, Digest] | None = None,
) -> tuple[list[TrackedContainer], list[str]]:
    """Resolve every covered container of the client's namespace.

    A container that cannot be resolved is still tracked, with its reason in
    ``unresolved``: a running container whose image cannot be checked is a
    finding, never a container skipped in silence.

    Args:
        client: a :class:`~agent.containerd.ContainerdClient`.
        selector: sidecar-mode filter; None covers all.
        image_cache: image name + target digest -> resolved layers, reused
            across sweeps (the view dance costs a few gRPC calls per image).
        known_digests: container id -> image digest seen by an earlier sweep,
            named in the finding when the image record is gone.

    Returns:
        The tracked containers, and one message per unresolved container.

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
        # The digest the container was last seen running, else the one its
        # image name resolves to now, if it still does.
        digest = (known_digests or {}).get(container.id)
        try:
            image = client.get_image(container.image)
            digest = digest or image.target_digest
            tracked.append(_resolve(client, container, cache, image))
        except Error as e:
            errors.append(f"container {client.namespace}/{container.id}: {e.message}")
            try:
                status = _task_status(client, container.id)
            except Error:
                # Not None: a container once running and now without a known
                # task would be taken as ended and finalized, unreported.
                status = TaskStatus.UNKNOWN
            tracked.append(
                TrackedContainer(
                    namespace=client.namespace,
                    id=container.id,
                    image_name=container.image,
                    image_digest=digest,
                    layers=(),
                    upperdir=None,
                    task_status=status,
                    labels=dict(container.labels),
                    unresolved=e.message,
                )
            )
    return tracked, errors


def _resolve(
    client: InventoryClient, container: Container, cache: dict[str, ImageLayers], image: Image
) -> TrackedContainer:
    """One container with its image layers and upperdir.

    Raises:
        Error: the image, a blob, a snapshot or the snapshotter cannot serve.
    """
    snapshotter = container.snapshotter or None
    name = snapshotter or getattr(client, "snapshotter", "overlayfs")
    if name not in SUPPORTED_SNAPSHOTTERS:
        raise InvalidInput(f"snapshotter {name!r} is not supported by the agent")
    key = f"{container.image}@{image.target_digest}"
    layers = cache.get(key)
    # Re-resolve when a directory is gone: the image was removed and
    # unpacked again under new snapshot numbers.
    if layers is None or any(
        x.snapshot_dir is None or not x.snapshot_dir.is_dir() for x in layers.layers
    ):
        layers = resolve_image_layers(client, container.image, snapshotter=snapshotter)
        cache[key] = layers
    # The rootfs must be built on the image's layers: the container record
    # names its image by a mutable name, and one retagged to another image
    # would have the agent check that image's snapshots instead.
    parent = client.snapshot_stat(container.snapshot_key, snapshotter=snapshotter).parent
    digest = image.target_digest
    if _top_chain(layers) != parent:
        # A tag re-pulled while the container runs: its own image usually
        # still has a record (another tag, the repo@digest or image id name).
        found = _image_of_rootfs(client, container, parent, cache, snapshotter)
        if found is None:
            raise VerificationError(
                f"the container's rootfs is built on {parent or 'no snapshot'}, not on the "
                f"top layer chain {_top_chain(layers) or '(none)'} of image {container.image}, "
                "and no other image record has that chain"
            )
        digest, layers = found
    mounts = client.mounts(container.snapshot_key, snapshotter=snapshotter)
    upper = next((m.upperdir for m in mounts if m.upperdir is not None), None)
    return TrackedContainer(
        namespace=client.namespace,
        id=container.id,
        image_name=container.image,
        image_digest=digest,
        layers=layers.layers,
        upperdir=upper,
        task_status=_task_status(client, container.id),
        labels=dict(container.labels),
    )


def _top_chain(layers: ImageLayers) -> str:
    return layers.layers[-1].chain_id if layers.layers else ""


def _repository(name: str) -> str:
    """``registry/repo`` of ``registry/repo:tag`` or ``registry/repo@sha256:...``."""
    name = name.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _image_of_rootfs(
    client: InventoryClient,
    container: Container,
    parent: str,
    cache: dict[str, ImageLayers],
    snapshotter: str | None,
) -> tuple[Digest, ImageLayers] | None:
    """The image record (target digest, layers) whose top layer chain is ``parent``.

    Looked for among the images resolved before (a retag the agent saw
    happen), then among the records of the same repository and the image id
    names (``sha256:...``) a CRI pull also writes; at most a few are resolved.
    """
    if not parent:
        return None
    for key, layers in cache.items():
        if _top_chain(layers) == parent and all(
            x.snapshot_dir is not None and x.snapshot_dir.is_dir() for x in layers.layers
        ):
            return Digest(key.rsplit("@", 1)[1]), layers
    repository = _repository(container.image)
    candidates = [
        i
        for i in client.list_images()
        if i.name != container.image
        and (_repository(i.name) == repository or i.name.startswith("sha256:"))
    ]
    for candidate in candidates[:_MAX_CANDIDATES]:
        try:
            layers = resolve_image_layers(client, candidate.name, snapshotter=snapshotter)
        except Error:
            continue
        if _top_chain(layers) == parent:
            cache[f"{candidate.name}@{candidate.target_digest}"] = layers
            return candidate.target_digest, layers
    return None
