# SPDX-License-Identifier: Apache-2.0
"""On real containerd: the manifest of each unpacked layer equals the tar's.

Imports images into containerd's overlayfs snapshotter, opens a View on each
committed layer (committed keys cannot be mounted; a view of one layer is a
bind mount of that layer's own directory, FACTS.md), computes the manifest
from the top ``lowerdir`` / bind source and compares it byte for byte with
the manifest computed from the layer blob in the OCI layout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from attestor.digests import Digest, chain_ids
from attestor.manifest import (
    FileManifest,
    compare_manifests,
    manifest_from_layer_blob,
    manifest_from_snapshot,
)
from tests.harness.binaries import require_root
from tests.harness.images import BuiltImage, ImageBuilder, RawLayer
from tests.harness.layers import Entry, whiteout
from tests.harness.sample import (
    CAPABILITY_PATH,
    CAPABILITY_XATTR,
    HARDLINK_PATHS,
    OPAQUE_DIR,
    SETUID_PATH,
)
from tests.harness.services import Containerd

SNAPSHOTTER = "overlayfs"


@contextmanager
def layer_dir(containerd: Containerd, chain_id: str) -> Iterator[Path]:
    """The snapshot directory holding only the layer whose chainID is given."""
    key = f"manifest-test-{uuid.uuid4().hex}"
    # --mounts prints the mounts at creation: the view holds no lease, so
    # containerd's GC may collect it at any moment (the layer dirs it names
    # belong to the image and stay).
    out = containerd.ctr(
        "snapshots", "--snapshotter", SNAPSHOTTER, "view", "--mounts", key, chain_id
    ).stdout
    try:
        (mount,) = json.loads(out)
        if mount["Type"] == "bind":  # a view of a single layer
            top = mount["Source"]
        else:
            (lower,) = [o for o in mount["Options"] if o.startswith("lowerdir=")]
            top = lower.removeprefix("lowerdir=").split(":")[0]  # top layer first
        yield Path(top)
    finally:
        containerd.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "rm", key, check=False)


def import_image(containerd: Containerd, image: BuiltImage, tmp: Path, name: str) -> None:
    archive = image.export_archive(tmp / f"{name.replace('/', '-')}.tar")
    containerd.ctr(
        "images", "import", "--base-name", name, "--snapshotter", SNAPSHOTTER, str(archive)
    )


def tar_manifests(image: BuiltImage) -> list[FileManifest]:
    manifests: list[FileManifest] = []
    for layer in image.layers:
        with image.blob(layer.digest).open("rb") as blob:
            scan = manifest_from_layer_blob(blob, layer.media_type, lower=list(reversed(manifests)))
        assert scan.diff_id == layer.diff_id
        manifests.append(scan.manifest)
    return manifests


def assert_layers_equal(containerd: Containerd, image: BuiltImage) -> list[FileManifest]:
    from_tar = tar_manifests(image)
    chains = chain_ids([Digest(d) for d in image.diff_ids])
    for index, chain_id in enumerate(chains):
        with layer_dir(containerd, chain_id) as directory:
            from_disk = manifest_from_snapshot(directory)
        assert compare_manifests(from_tar[index], from_disk) == [], f"layer {index}"
        assert from_disk.canonical_bytes() == from_tar[index].canonical_bytes()
        assert from_disk.tree_digest == from_tar[index].tree_digest
    return from_tar


def test_sample_image_layers_equal_their_snapshots(
    containerd: Containerd, sample_built_image: BuiltImage, tmp_path: Path
) -> None:
    import_image(containerd, sample_built_image, tmp_path, "manifest/sample")
    manifests = assert_layers_equal(containerd, sample_built_image)
    files = manifests[1]
    setuid = files.get(SETUID_PATH)
    assert setuid is not None and setuid.mode == 0o4755
    cap = files.get(CAPABILITY_PATH)
    assert cap is not None and cap.capability == CAPABILITY_XATTR
    link_types = {files.get(p).type.value for p in HARDLINK_PATHS}  # type: ignore[union-attr]
    assert link_types == {"file", "hardlink"}
    assert any(e.type.value == "whiteout" for e in manifests[2].entries)
    opaque = manifests[3].get(OPAQUE_DIR)
    assert opaque is not None and opaque.type.value == "opaque_dir"


def test_tricky_layers_equal_their_snapshots(
    containerd: Containerd, image_builder: ImageBuilder, tmp_path: Path
) -> None:
    cap = CAPABILITY_XATTR
    layers = [
        RawLayer(
            (
                Entry("opt", kind="dir", mode=0o2750, uid=7, gid=8),
                Entry("opt/app", kind="dir", mode=0o700, uid=9, gid=9),
                Entry("opt/app/bin", data=b"v1", mode=0o755),
                Entry("tmp", kind="dir", mode=0o1777),
                Entry("var/lib/x", data=b"implicit parents"),
                Entry("dup", data=b"first", mode=0o600),
                Entry("dup", data=b"second", mode=0o640, uid=3, gid=4),
                Entry("d", kind="dir", mode=0o700),
                Entry("d", kind="dir", mode=0o751, uid=5),
                Entry("capped", data=b"c", mode=0o755, xattrs=(("security.capability", cap),)),
                Entry(
                    "capped2",
                    kind="hardlink",
                    target="capped",
                    mode=0o755,
                    xattrs=(("security.capability", cap),),
                ),
                Entry("gone-dir", kind="dir"),
                Entry("gone-dir/f", data=b"f"),
                Entry("gone-dir", kind="symlink", target="opt"),
            ),
            "tricky base",
        ),
        RawLayer(
            (
                # opt/ and opt/app/ are not listed: containerd copies them from below.
                Entry("opt/app/bin", data=b"v2", mode=0o755),
                whiteout("dup"),
                Entry("srv/new/deep", data=b"fresh"),
                Entry("tmp/.wh..wh..opq"),
            ),
            "implicit dirs over a lower layer",
        ),
    ]
    image = image_builder.build(layers, name="tricky", compression="zstd")
    import_image(containerd, image, tmp_path, "manifest/tricky")
    manifests = assert_layers_equal(containerd, image)
    upper = manifests[1]
    assert (upper.get("opt").mode, upper.get("opt").uid) == (0o2750, 7)  # type: ignore[union-attr]
    assert upper.get("opt/app").mode == 0o700  # type: ignore[union-attr]
    assert upper.get("srv").mode == 0o755  # type: ignore[union-attr]
    assert upper.get("tmp").type.value == "opaque_dir"  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _root_only() -> None:
    require_root("containerd")
