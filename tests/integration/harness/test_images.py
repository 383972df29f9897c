# SPDX-License-Identifier: Apache-2.0
"""The image builder writes what the sample image promises, and it reaches the services."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
import requests

from tests.harness._proc import pid_alive
from tests.harness.images import BuiltImage, ImageBuilder, PushedImage, RawLayer
from tests.harness.layers import Entry
from tests.harness.sample import (
    CAPABILITY_PATH,
    CAPABILITY_XATTR,
    DELETED_PATH,
    HARDLINK_PATHS,
    OPAQUE_DIR,
    SETUID_PATH,
    SYMLINK_PATH,
)
from tests.harness.services import Containerd, Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _members(image: BuiltImage, index: int) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(image.layer_tar(index))) as tar:
        return {m.name.removeprefix("./"): m for m in tar.getmembers()}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_sample_image_has_every_entry_kind(sample_built_image: BuiltImage) -> None:
    image = sample_built_image
    assert len(image.layers) >= 4
    for i, layer in enumerate(image.layers):
        assert _sha256(image.blob(layer.digest).read_bytes()) == layer.digest
        assert _sha256(image.layer_tar(i)) == layer.diff_id
        assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    base, files, changes, opq = (_members(image, i) for i in range(4))
    assert base["bin/busybox"].mode == 0o755
    assert base["bin/sh"].issym() and base["bin/sh"].linkname == "busybox"
    assert files[SYMLINK_PATH].issym() and files[SYMLINK_PATH].linkname == "app.conf"
    links = [files[p] for p in HARDLINK_PATHS]
    assert sum(m.islnk() for m in links) == 1
    assert {m.linkname for m in links if m.islnk()} <= set(HARDLINK_PATHS)
    assert files[SETUID_PATH].mode == 0o4755
    assert files["srv/data/secret.key"].mode == 0o600
    assert files["srv/a/b/c/deep.txt"].isfile()
    xattr = files[CAPABILITY_PATH].pax_headers["SCHILY.xattr.security.capability"]
    assert xattr.encode("utf-8", "surrogateescape") == CAPABILITY_XATTR
    assert changes["srv/data/.wh." + DELETED_PATH.rsplit("/", 1)[1]].isfile()
    assert f"{OPAQUE_DIR}/.wh..wh..opq" in opq
    assert f"{OPAQUE_DIR}/fresh.txt" in opq


def test_sample_image_is_pushed_and_fetchable_by_digest(
    sample_image: PushedImage, registry: Registry
) -> None:
    assert sample_image.by_digest == f"{registry.host}/sample/app@{sample_image.manifest_digest}"
    assert sample_image.by_tag == f"{registry.host}/sample/app:latest"
    resp = requests.get(
        f"{registry.url}/v2/sample/app/manifests/{sample_image.manifest_digest}",
        headers={"Accept": OCI_MANIFEST},
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == sample_image.manifest_digest
    body = resp.content
    assert _sha256(body) == sample_image.manifest_digest
    manifest = json.loads(body)
    assert len(manifest["layers"]) == len(sample_image.layers) >= 4
    assert manifest["config"]["digest"] == sample_image.config_digest


@pytest.mark.parametrize(
    ("compression", "media_type"),
    [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("none", "application/vnd.oci.image.layer.v1.tar"),
    ],
)
def test_other_compressions_keep_diff_ids_and_push(
    image_builder: ImageBuilder, registry: Registry, compression: str, media_type: str
) -> None:
    layers = [
        RawLayer((Entry("etc/one", data=b"1\n"),)),
        RawLayer((Entry("etc/two", data=b"2\n", mode=0o600),)),
    ]
    plain = image_builder.build(layers, name=f"plain-{compression}")
    other = image_builder.build(layers, name=compression, compression=compression)  # type: ignore[arg-type]
    assert [layer.media_type for layer in other.layers] == [media_type] * 2
    assert other.diff_ids == plain.diff_ids
    pushed = image_builder.push(other, registry, f"compress/{compression}")
    url = f"{registry.url}/v2/compress/{compression}/blobs/{other.layers[0].digest}"
    assert _sha256(requests.get(url, timeout=5).content) == other.layers[0].digest
    assert pushed.manifest_digest == other.manifest_digest


def test_sample_image_imports_into_containerd(
    containerd: Containerd, sample_built_image: BuiltImage, tmp_path: Path
) -> None:
    archive = sample_built_image.export_archive(tmp_path / "sample.tar")
    containerd.ctr(
        "images", "import", "--base-name", "sample.test/app", "--snapshotter", "overlayfs",
        str(archive),
    )  # fmt: skip
    images = containerd.ctr("images", "ls", "-q").stdout.split()
    assert "sample.test/app:latest" in images
    snapshots = containerd.ctr("snapshots", "--snapshotter", "overlayfs", "ls").stdout
    committed = {
        line.split()[0] for line in snapshots.splitlines()[1:] if line.split()[-1] == "Committed"
    }
    chain = [sample_built_image.diff_ids[0]]
    for diff_id in sample_built_image.diff_ids[1:]:
        chain.append(_sha256(f"{chain[-1]} {diff_id}".encode()))
    assert set(chain) <= committed


def _layer_paths(containerd: Containerd, relpath: str) -> list[Path]:
    """Return ``relpath`` in every snapshot that has it, lowest layer first."""
    found = containerd.snapshots_dir.glob(f"*/fs/{relpath}")
    return sorted(found, key=lambda p: int(p.relative_to(containerd.snapshots_dir).parts[0]))


def _layer_dir(containerd: Containerd, relpath: str) -> Path:
    found = _layer_paths(containerd, relpath)
    assert len(found) == 1, found
    return found[0]


def test_sample_snapshots_keep_modes_xattrs_and_opaque(
    sample_built_image: BuiltImage, tmp_path: Path
) -> None:
    # A containerd of its own: other tests import the sample image into the
    # session containerd too, and every import adds its own snapshot dirs.
    containerd = Containerd(tmp_path / "own")
    containerd.workdir.mkdir()
    containerd.start()
    try:
        archive = sample_built_image.export_archive(tmp_path / "sample.tar")
        containerd.ctr("images", "import", "--base-name", "sample.test/snap", str(archive))
        suid = _layer_dir(containerd, SETUID_PATH)
        assert suid.stat().st_mode & 0o7777 == 0o4755
        cap = _layer_dir(containerd, CAPABILITY_PATH)
        assert os.getxattr(cap, "security.capability") == CAPABILITY_XATTR
        opaque_dir = _layer_dir(containerd, f"{OPAQUE_DIR}/fresh.txt").parent
        assert os.getxattr(opaque_dir, "trusted.overlay.opaque") == b"y"
        created, deleted = (p.lstat() for p in _layer_paths(containerd, DELETED_PATH))
        assert stat.S_ISREG(created.st_mode)
        assert stat.S_ISCHR(deleted.st_mode) and deleted.st_rdev == 0
    finally:
        containerd.stop()


def test_sample_image_runs_busybox(
    containerd: Containerd, sample_built_image: BuiltImage, tmp_path: Path
) -> None:
    archive = sample_built_image.export_archive(tmp_path / "sample.tar")
    containerd.ctr("images", "import", "--base-name", "sample.test/run", str(archive))
    res = containerd.ctr(
        "run", "--rm", "--snapshotter", "overlayfs", "sample.test/run:latest", "harness-run",
        "/bin/sh", "-c", "cat /etc/app.conf; ls /srv/opq",
    )  # fmt: skip
    assert res.stdout.split() == ["level=2", "fresh.txt"]


def test_containerd_stop_kills_running_containers_and_unmounts(
    sample_built_image: BuiltImage, tmp_path: Path
) -> None:
    own = Containerd(tmp_path / "own")
    own.workdir.mkdir()
    own.start()
    try:
        own.ctr("images", "import", "--base-name", "sample.test/stop",
                str(sample_built_image.export_archive(tmp_path / "s.tar")))  # fmt: skip
        own.ctr("run", "-d", "sample.test/stop:latest", "sleeper", "/bin/sleep", "600")
        task_pid = int(own.ctr("tasks", "ls").stdout.splitlines()[1].split()[1])
        assert pid_alive(task_pid)
    finally:
        own.stop()
    assert not pid_alive(task_pid)
    assert own.pid is None
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(own.workdir) not in mounts
