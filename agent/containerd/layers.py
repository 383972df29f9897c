# SPDX-License-Identifier: Apache-2.0
"""Map an image, or a running container, to its layers' directories on disk.

For an image: image record -> manifest (via the index, for one platform) ->
config ``rootfs.diff_ids`` -> chainIDs (the committed snapshot keys) -> each
layer's own snapshot directory, found through a temporary View.

Every blob read from the content store is checked against its digest before
it is parsed, and the config's diffIDs are cross-checked with containerd's
``containerd.io/uncompressed`` content label: containerd unpacked the layer
under that diffID, so a disagreement means the record was tampered with.
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.containerd.types import UNCOMPRESSED_LABEL, Container, ContentInfo, Image, Mount
from attestor.digests import Digest, chain_ids, parse_digest, sha256_digest
from attestor.errors import InvalidInput, NotFound, UpstreamError, VerificationError

__all__ = [
    "ContainerRootfs",
    "ContainerSource",
    "ImageLayers",
    "ImageSource",
    "LayerInfo",
    "Platform",
    "container_rootfs",
    "resolve_image_layers",
]

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
# Python's platform.machine() -> OCI/Go architecture names.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class Platform:
    """An OCI platform; ``variant`` is only compared when set on both sides."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def host(cls) -> Platform:
        """The platform this process runs on."""
        machine = _platform.machine()
        return cls(os="linux", architecture=_GOARCH.get(machine, machine))


@dataclass(frozen=True)
class LayerInfo:
    """One layer, bottom layer first (``index`` 0).

    ``snapshot_dir`` holds only this layer's changes; it is None when the
    image was not unpacked into the snapshotter.
    """

    index: int
    digest: Digest
    media_type: str
    size: int
    diff_id: Digest
    chain_id: Digest
    snapshot_dir: Path | None


@dataclass(frozen=True)
class ImageLayers:
    """An image resolved down to its layers."""

    image: str
    manifest_digest: Digest
    config_digest: Digest
    layers: tuple[LayerInfo, ...]


@dataclass(frozen=True)
class ContainerRootfs:
    """Where a running container's filesystem is.

    ``upperdir`` is its rw layer (drift lands there); ``lowerdirs`` are the
    image layers, top first; ``rootfs`` is the merged mount point.
    """

    container_id: str
    image: str
    snapshot_key: str
    upperdir: Path | None
    lowerdirs: tuple[Path, ...]
    rootfs: Path


class ImageSource(Protocol):
    """What :func:`resolve_image_layers` needs from containerd."""

    def get_image(self, name: str) -> Image: ...

    def get_content_info(self, digest: str) -> ContentInfo: ...

    def read_content(self, digest: str, *, max_bytes: int | None = None) -> bytes: ...

    def view_mounts(
        self, key: str, *, snapshotter: str | None = None
    ) -> AbstractContextManager[list[Mount]]: ...


class ContainerSource(Protocol):
    """What :func:`container_rootfs` needs from containerd."""

    namespace: str

    def get_container(self, container_id: str) -> Container: ...

    def mounts(self, active_key: str, *, snapshotter: str | None = None) -> list[Mount]: ...


def _read_json(source: ImageSource, digest: str, what: str) -> dict[str, Any]:
    parse_digest(digest)
    data = source.read_content(digest)
    if sha256_digest(data) != digest:
        raise VerificationError(f"{what} {digest} in the content store does not match its digest")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidInput(f"{what} {digest} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} {digest} is not a JSON object")
    return doc


def _descriptor(raw: object, what: str) -> tuple[Digest, str, int]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what}: descriptor is not an object")
    digest, media_type, size = raw.get("digest"), raw.get("mediaType"), raw.get("size")
    if not isinstance(digest, str) or not isinstance(media_type, str):
        raise InvalidInput(f"{what}: descriptor lacks digest or mediaType")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what}: descriptor size {size!r} is invalid")
    parse_digest(digest)
    return Digest(digest), media_type, size


def _matches(raw: object, want: Platform) -> bool:
    if not isinstance(raw, dict):
        return False
    if raw.get("os") != want.os or raw.get("architecture") != want.architecture:
        return False
    variant = raw.get("variant") or ""
    return not (want.variant and variant and variant != want.variant)


def _select_manifest(index: dict[str, Any], want: Platform, digest: str) -> Digest:
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidInput(f"index {digest} has no manifests list")
    exact: list[Digest] = []
    unlabelled: list[Digest] = []
    for entry in manifests:
        d, media_type, _ = _descriptor(entry, f"index {digest}")
        if media_type not in MANIFEST_TYPES:
            continue
        if _matches(entry.get("platform"), want):
            exact.append(d)
        elif entry.get("platform") is None:
            unlabelled.append(d)
    # Like containerd's platform matcher, an entry without a platform matches
    # (umoci and `ctr images import` write such indexes); a labelled one wins.
    if exact or unlabelled:
        return (exact or unlabelled)[0]
    raise NotFound(
        f"index {digest} has no manifest for {want.os}/{want.architecture}"
        + (f"/{want.variant}" if want.variant else "")
    )


def _diff_ids(config: dict[str, Any], digest: str) -> list[Digest]:
    rootfs = config.get("rootfs")
    raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise InvalidInput(f"config {digest} has no rootfs.diff_ids list")
    for d in raw:
        parse_digest(d)
    return [Digest(d) for d in raw]


def _snapshot_dirs(
    source: ImageSource, chains: Sequence[Digest], snapshotter: str | None
) -> list[Path | None]:
    """Each layer's own directory, bottom first; None where not unpacked."""
    if not chains:
        return []
    # One view on the top layer lists every lower directory, top first.
    try:
        with source.view_mounts(chains[-1], snapshotter=snapshotter) as mounts:
            lowers = [p for m in mounts for p in m.lowerdirs]
    except NotFound:
        lowers = []
    if len(lowers) == len(chains):
        return list(reversed(lowers))
    # Partly unpacked (or an unexpected mount shape): one view per layer,
    # whose top entry is that layer's own directory.
    dirs: list[Path | None] = []
    for chain in chains:
        try:
            with source.view_mounts(chain, snapshotter=snapshotter) as mounts:
                tops = [m.lowerdirs[0] for m in mounts if m.lowerdirs]
        except NotFound:
            tops = []
        dirs.append(tops[0] if tops else None)
    return dirs


def resolve_image_layers(
    source: ImageSource,
    image_name: str,
    *,
    platform: Platform | None = None,
    snapshotter: str | None = None,
) -> ImageLayers:
    """Resolve an image to its layers, diffIDs, chainIDs and snapshot directories.

    Args:
        source: a :class:`~agent.containerd.client.ContainerdClient` (or a fake).
        image_name: the image record's name, e.g. ``registry/repo:tag``.
        platform: which manifest of an index to use; the host platform by default.
        snapshotter: the snapshotter the image was unpacked into (client default).

    Raises:
        NotFound: the image, a blob, or a manifest for the platform is missing.
        InvalidInput: a manifest, index or config is malformed or of an unknown type.
        VerificationError: a blob does not match its digest, or a diffID does
            not match containerd's ``containerd.io/uncompressed`` label.
        TooLarge: a manifest or config exceeds the client's cap.
        UpstreamError: containerd failed.
    """
    want = platform or Platform.host()
    image = source.get_image(image_name)
    manifest_digest, media_type = image.target_digest, image.media_type
    if media_type in INDEX_TYPES:
        index = _read_json(source, manifest_digest, "index")
        manifest_digest = _select_manifest(index, want, manifest_digest)
    elif media_type not in MANIFEST_TYPES:
        raise InvalidInput(f"image {image_name} has unsupported media type {media_type!r}")

    manifest = _read_json(source, manifest_digest, "manifest")
    config_digest, _, _ = _descriptor(manifest.get("config"), f"manifest {manifest_digest}")
    raw_layers = manifest.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidInput(f"manifest {manifest_digest} has no layers list")
    descriptors = [_descriptor(d, f"manifest {manifest_digest}") for d in raw_layers]

    diff_ids = _diff_ids(_read_json(source, config_digest, "config"), config_digest)
    if len(diff_ids) != len(descriptors):
        raise InvalidInput(
            f"manifest {manifest_digest} has {len(descriptors)} layers, "
            f"config {config_digest} has {len(diff_ids)} diff_ids"
        )
    for (digest, _, _), diff_id in zip(descriptors, diff_ids, strict=True):
        try:
            label = source.get_content_info(digest).labels.get(UNCOMPRESSED_LABEL)
        except NotFound:
            # Layer blobs may be garbage-collected after unpacking; the config
            # (digest-checked above) is then the only record.
            label = None
        if label is not None and label != diff_id:
            raise VerificationError(
                f"layer {digest}: config diffID {diff_id} != containerd label {label}"
            )

    chains = chain_ids(diff_ids)
    dirs = _snapshot_dirs(source, chains, snapshotter)
    layers = tuple(
        LayerInfo(
            index=i,
            digest=digest,
            media_type=media_type,
            size=size,
            diff_id=diff_ids[i],
            chain_id=chains[i],
            snapshot_dir=dirs[i],
        )
        for i, (digest, media_type, size) in enumerate(descriptors)
    )
    return ImageLayers(
        image=image_name,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layers=layers,
    )


def container_rootfs(
    source: ContainerSource, container_id: str, *, state_dir: Path
) -> ContainerRootfs:
    """Locate a container's rw layer (upperdir), image layers and merged rootfs.

    Args:
        source: a :class:`~agent.containerd.client.ContainerdClient` (or a fake).
        container_id: the container's id.
        state_dir: containerd's ``state`` directory (the rootfs is mounted below it).

    Raises:
        NotFound: the container or its active snapshot does not exist.
        UpstreamError: containerd failed, or the snapshot is not an overlay.
    """
    container = source.get_container(container_id)
    mounts = source.mounts(container.snapshot_key, snapshotter=container.snapshotter or None)
    if not mounts:
        raise UpstreamError(f"container {container_id}: snapshot has no mounts")
    upper = next((m.upperdir for m in mounts if m.upperdir is not None), None)
    lowers = tuple(p for m in mounts if m.type == "overlay" for p in m.lowerdirs)
    rootfs = (
        state_dir / "io.containerd.runtime.v2.task" / source.namespace / container_id / "rootfs"
    )
    return ContainerRootfs(
        container_id=container_id,
        image=container.image,
        snapshot_key=container.snapshot_key,
        upperdir=upper,
        lowerdirs=lowers,
        rootfs=rootfs,
    )
