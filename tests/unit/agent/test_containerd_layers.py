# SPDX-License-Identifier: Apache-2.0
"""resolve_image_layers / container_rootfs against an in-memory containerd.

The fake implements the ImageSource / ContainerSource protocols like a small
simulator: a content store keyed by digest, image records, and committed
snapshots whose views list their lower directories top first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.containerd.layers import Platform, container_rootfs, resolve_image_layers
from agent.containerd.types import UNCOMPRESSED_LABEL, Container, ContentInfo, Image, Mount
from attestor.digests import Digest, chain_ids, sha256_digest
from attestor.errors import InvalidInput, NotFound, VerificationError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SNAPS = Path("/ctd/root/io.containerd.snapshotter.v1.overlayfs/snapshots")


@dataclass
class FakeContainerd:
    content: dict[str, bytes] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    # chainID -> (parent chainID, own dir)
    snapshots: dict[str, tuple[str, Path]] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)
    active: dict[str, list[Mount]] = field(default_factory=dict)
    namespace: str = "ns1"
    open_views: int = 0
    views_made: int = 0

    def put(self, data: bytes, labels: dict[str, str] | None = None) -> Digest:
        digest = sha256_digest(data)
        self.content[digest] = data
        self.labels[digest] = labels or {}
        return digest

    def get_image(self, name: str) -> Image:
        if name not in self.images:
            raise NotFound(f"image {name}")
        return self.images[name]

    def get_content_info(self, digest: str) -> ContentInfo:
        if digest not in self.labels:
            raise NotFound(digest)
        return ContentInfo(Digest(digest), len(self.content.get(digest, b"")), self.labels[digest])

    def read_content(self, digest: str, *, max_bytes: int | None = None) -> bytes:
        if digest not in self.content:
            raise NotFound(digest)
        return self.content[digest]

    @contextmanager
    def view_mounts(self, key: str, *, snapshotter: str | None = None) -> Iterator[list[Mount]]:
        if key not in self.snapshots:
            raise NotFound(key)
        dirs = []
        cur = key
        while cur:
            parent, own = self.snapshots[cur]
            dirs.append(own)
            cur = parent
        self.open_views += 1
        self.views_made += 1
        try:
            if len(dirs) == 1:
                yield [Mount("bind", str(dirs[0]), options=("ro", "rbind"))]
            else:
                yield [
                    Mount("overlay", "overlay", options=("lowerdir=" + ":".join(map(str, dirs)),))
                ]
        finally:
            self.open_views -= 1

    def get_container(self, container_id: str) -> Container:
        return self.containers[container_id]

    def mounts(self, active_key: str, *, snapshotter: str | None = None) -> list[Mount]:
        if active_key not in self.active:
            raise NotFound(active_key)
        return self.active[active_key]


def _descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def _image(
    fake: FakeContainerd,
    n_layers: int = 3,
    *,
    labels: bool = True,
    unpack: int | None = None,
    arch: str = "amd64",
) -> tuple[bytes, list[Digest], list[Digest]]:
    """Store a manifest, config and layer records; unpack the bottom ``unpack`` layers."""
    layer_blobs = [f"layer-{arch}-{i}".encode() for i in range(n_layers)]
    diff_ids = [sha256_digest(b"tar-" + blob) for blob in layer_blobs]
    digests = [
        fake.put(blob, {UNCOMPRESSED_LABEL: d} if labels else None)
        for blob, d in zip(layer_blobs, diff_ids, strict=True)
    ]
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    fake.put(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(LAYER_GZIP, b) for b in layer_blobs],
        }
    ).encode()
    fake.put(manifest)
    chains = chain_ids(diff_ids)
    for i, chain in enumerate(chains[: n_layers if unpack is None else unpack]):
        fake.snapshots[chain] = (chains[i - 1] if i else "", SNAPS / f"{i + 1}" / "fs")
    return manifest, diff_ids, digests


def test_manifest_image_resolves_layers_chains_and_dirs() -> None:
    fake = FakeContainerd()
    manifest, diff_ids, digests = _image(fake)
    fake.images["r/app:1"] = Image("r/app:1", sha256_digest(manifest), OCI_MANIFEST, len(manifest))

    got = resolve_image_layers(fake, "r/app:1")

    assert got.manifest_digest == sha256_digest(manifest)
    assert [layer.index for layer in got.layers] == [0, 1, 2]
    assert [layer.digest for layer in got.layers] == digests
    assert [layer.diff_id for layer in got.layers] == diff_ids
    assert [layer.chain_id for layer in got.layers] == chain_ids(diff_ids)
    assert [layer.snapshot_dir for layer in got.layers] == [
        SNAPS / f"{i}" / "fs" for i in (1, 2, 3)
    ]
    assert fake.views_made == 1 and fake.open_views == 0


def test_single_layer_image_uses_the_bind_mount_source() -> None:
    fake = FakeContainerd()
    manifest, _, _ = _image(fake, n_layers=1)
    fake.images["one"] = Image("one", sha256_digest(manifest), OCI_MANIFEST, len(manifest))
    assert resolve_image_layers(fake, "one").layers[0].snapshot_dir == SNAPS / "1" / "fs"


def test_not_unpacked_layers_have_no_dir() -> None:
    fake = FakeContainerd()
    manifest, _, _ = _image(fake, unpack=2)
    fake.images["half"] = Image("half", sha256_digest(manifest), OCI_MANIFEST, len(manifest))

    dirs = [layer.snapshot_dir for layer in resolve_image_layers(fake, "half").layers]

    assert dirs == [SNAPS / "1" / "fs", SNAPS / "2" / "fs", None]
    assert fake.open_views == 0


def test_index_selects_the_requested_platform() -> None:
    fake = FakeContainerd()
    amd, _, _ = _image(fake, arch="amd64")
    arm, arm_diff_ids, _ = _image(fake, arch="arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                _descriptor(OCI_MANIFEST, amd, platform={"os": "linux", "architecture": "amd64"}),
                _descriptor(
                    OCI_MANIFEST, arm,
                    platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
                ),
            ],
        }
    ).encode()  # fmt: skip
    fake.put(index)
    fake.images["multi"] = Image("multi", sha256_digest(index), OCI_INDEX, len(index))

    got = resolve_image_layers(fake, "multi", platform=Platform("linux", "arm64", "v8"))
    assert got.manifest_digest == sha256_digest(arm)
    assert [layer.diff_id for layer in got.layers] == arm_diff_ids
    got = resolve_image_layers(fake, "multi", platform=Platform("linux", "amd64"))
    assert got.manifest_digest == sha256_digest(amd)
    with pytest.raises(NotFound, match="s390x"):
        resolve_image_layers(fake, "multi", platform=Platform("linux", "s390x"))


def test_index_entry_without_platform_matches() -> None:
    fake = FakeContainerd()
    manifest, _, _ = _image(fake)
    index = json.dumps({"schemaVersion": 2, "manifests": [_descriptor(OCI_MANIFEST, manifest)]})
    fake.put(index.encode())
    fake.images["idx"] = Image("idx", sha256_digest(index.encode()), OCI_INDEX, len(index))
    got = resolve_image_layers(fake, "idx", platform=Platform("linux", "riscv64"))
    assert got.manifest_digest == sha256_digest(manifest)


def test_content_not_matching_its_digest_is_rejected() -> None:
    fake = FakeContainerd()
    manifest, _, _ = _image(fake)
    digest = sha256_digest(manifest)
    fake.content[digest] = manifest.replace(b"schemaVersion", b"schemaversion")
    fake.images["bad"] = Image("bad", digest, OCI_MANIFEST, len(manifest))
    with pytest.raises(VerificationError, match="does not match its digest"):
        resolve_image_layers(fake, "bad")


def test_diff_id_disagreeing_with_containerd_label_is_rejected() -> None:
    fake = FakeContainerd()
    manifest, _, digests = _image(fake)
    fake.labels[digests[1]][UNCOMPRESSED_LABEL] = "sha256:" + "e" * 64
    fake.images["lied"] = Image("lied", sha256_digest(manifest), OCI_MANIFEST, len(manifest))
    with pytest.raises(VerificationError, match="containerd label"):
        resolve_image_layers(fake, "lied")


def test_missing_labels_and_gc_ed_layer_blobs_are_accepted() -> None:
    fake = FakeContainerd()
    manifest, diff_ids, digests = _image(fake, labels=False)
    del fake.labels[digests[0]]
    fake.images["nolabel"] = Image("nolabel", sha256_digest(manifest), OCI_MANIFEST, 1)
    got = resolve_image_layers(fake, "nolabel")
    assert [layer.diff_id for layer in got.layers] == diff_ids


def test_layer_count_mismatch_is_invalid() -> None:
    fake = FakeContainerd()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    fake.put(config)
    manifest = json.dumps(
        {"config": _descriptor(OCI_CONFIG, config), "layers": [_descriptor(LAYER_GZIP, b"x")]}
    ).encode()
    fake.put(manifest)
    fake.images["odd"] = Image("odd", sha256_digest(manifest), OCI_MANIFEST, len(manifest))
    with pytest.raises(InvalidInput, match="1 layers"):
        resolve_image_layers(fake, "odd")


def test_unknown_media_type_is_refused() -> None:
    fake = FakeContainerd()
    fake.images["x"] = Image("x", sha256_digest(b"{}"), "application/vnd.unknown+json", 2)
    with pytest.raises(InvalidInput, match="unsupported media type"):
        resolve_image_layers(fake, "x")


def test_container_rootfs_finds_upperdir_lowerdirs_and_rootfs() -> None:
    fake = FakeContainerd()
    fake.containers["c1"] = Container("c1", "r/app:1", "overlayfs", "c1", "io.containerd.runc.v2")
    fake.active["c1"] = [
        Mount(
            "overlay",
            "overlay",
            options=(
                f"workdir={SNAPS}/7/work",
                f"upperdir={SNAPS}/7/fs",
                f"lowerdir={SNAPS}/2/fs:{SNAPS}/1/fs",
            ),
        )
    ]
    got = container_rootfs(fake, "c1", state_dir=Path("/run/ctd"))
    assert got.upperdir == SNAPS / "7" / "fs"
    assert got.lowerdirs == (SNAPS / "2" / "fs", SNAPS / "1" / "fs")
    assert got.rootfs == Path("/run/ctd/io.containerd.runtime.v2.task/ns1/c1/rootfs")
    assert got.image == "r/app:1"
