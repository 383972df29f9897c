# SPDX-License-Identifier: Apache-2.0
"""ContainerdClient and layer resolution against a real containerd (harness)."""

from __future__ import annotations

import os
import signal
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.containerd.client import ContainerdClient
from agent.containerd.events import (
    ContainerCreate,
    ContainerDelete,
    ImageCreate,
    SnapshotCommit,
    TaskStart,
)
from agent.containerd.layers import container_rootfs, resolve_image_layers
from agent.containerd.snapshots import VIEW_KEY_PREFIX
from agent.containerd.types import SnapshotKind, TaskStatus
from attestor.digests import chain_ids
from attestor.errors import NotFound
from tests.harness.images import BuiltImage, ImageBuilder, RawLayer
from tests.harness.layers import Entry
from tests.harness.sample import DELETED_PATH, OPAQUE_DIR, SETUID_PATH, SYMLINK_PATH
from tests.harness.services import Containerd

pytestmark = pytest.mark.containerd


def _wait_status(client: ContainerdClient, cid: str, want: TaskStatus) -> TaskStatus:
    status = client.get_task(cid).status
    deadline = time.monotonic() + 10
    while status != want and time.monotonic() < deadline:
        time.sleep(0.05)
        status = client.get_task(cid).status
    return status


def test_version(client: ContainerdClient) -> None:
    assert client.version().version.startswith("1.")


def test_list_images_after_import(client: ContainerdClient, imported_sample: str) -> None:
    names = {i.name: i for i in client.list_images()}
    assert imported_sample in names
    image = names[imported_sample]
    assert image.target_digest.startswith("sha256:")
    assert image.media_type.endswith("+json")


def test_unknown_image_is_not_found(client: ContainerdClient) -> None:
    with pytest.raises(NotFound):
        client.get_image("does-not-exist:latest")


def test_layers_match_the_built_image(
    client: ContainerdClient, imported_sample: str, sample_built_image: BuiltImage
) -> None:
    resolved = resolve_image_layers(client, imported_sample)

    assert resolved.manifest_digest == sample_built_image.manifest_digest
    assert resolved.config_digest == sample_built_image.config_digest
    assert [layer.digest for layer in resolved.layers] == [
        layer.digest for layer in sample_built_image.layers
    ]
    assert [layer.diff_id for layer in resolved.layers] == list(sample_built_image.diff_ids)
    assert [layer.chain_id for layer in resolved.layers] == chain_ids(
        list(sample_built_image.diff_ids)  # type: ignore[arg-type]
    )
    # The chainIDs are the committed snapshot keys.
    for layer in resolved.layers:
        assert client.snapshot_stat(layer.chain_id).kind is SnapshotKind.COMMITTED
        info = client.get_content_info(layer.digest)
        assert info.labels["containerd.io/uncompressed"] == layer.diff_id


def test_each_snapshot_dir_holds_only_its_layer(
    client: ContainerdClient, imported_sample: str, containerd: Containerd
) -> None:
    layers = resolve_image_layers(client, imported_sample).layers
    dirs = [layer.snapshot_dir for layer in layers]
    assert all(d is not None and d.is_dir() for d in dirs)
    assert len(set(dirs)) == len(dirs)
    d0, d1, d2, d3 = (d for d in dirs if d is not None)
    assert all(d.is_relative_to(containerd.snapshots_dir) for d in (d0, d1, d2, d3))

    # 0: busybox base only.
    assert (d0 / "bin" / "busybox").is_file()
    assert os.readlink(d0 / "bin" / "sh") == "busybox"
    assert not (d0 / "etc" / "app.conf").exists()
    # 1: files, links, setuid; nothing from layer 0.
    assert (d1 / "etc" / "app.conf").read_bytes() == b"level=1\n"
    assert os.readlink(d1 / SYMLINK_PATH) == "app.conf"
    assert os.stat(d1 / SETUID_PATH).st_mode & stat.S_ISUID
    assert not (d1 / "bin").exists()
    # 2: a whiteout is a 0/0 character device; the rewrite and the new file.
    gone = os.lstat(d2 / DELETED_PATH)
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert (d2 / "etc" / "app.conf").read_bytes() == b"level=2\n"
    assert (d2 / "srv" / "new.txt").is_file()
    assert not (d2 / SETUID_PATH).exists()
    # 3: the opaque directory.
    assert sorted(p.name for p in (d3 / OPAQUE_DIR).iterdir()) == ["fresh.txt"]
    assert os.getxattr(d3 / OPAQUE_DIR, "trusted.overlay.opaque") == b"y"


def test_views_are_removed(
    client: ContainerdClient, containerd: Containerd, imported_sample: str
) -> None:
    layers = resolve_image_layers(client, imported_sample).layers
    with client.view_mounts(layers[1].chain_id) as mounts:
        lowers = [p for m in mounts for p in m.lowerdirs]
        assert lowers == [layers[1].snapshot_dir, layers[0].snapshot_dir]
        assert any(s.name.startswith(VIEW_KEY_PREFIX) for s in client.list_snapshots())

    with pytest.raises(RuntimeError), client.view_mounts(layers[0].chain_id) as mounts:
        assert [m.type for m in mounts] == ["bind"]
        raise RuntimeError("body fails")

    leftovers = [s.name for s in client.list_snapshots() if s.name.startswith(VIEW_KEY_PREFIX)]
    assert leftovers == []
    assert VIEW_KEY_PREFIX not in containerd.ctr("snapshots", "ls").stdout
    assert VIEW_KEY_PREFIX not in containerd.ctr("leases", "ls").stdout


def test_view_of_missing_snapshot_is_not_found(client: ContainerdClient) -> None:
    with pytest.raises(NotFound), client.view_mounts("sha256:" + "0" * 64):
        pass


def test_events_arrive(
    client: ContainerdClient,
    containerd: Containerd,
    image_builder: ImageBuilder,
    tmp_path: Path,
) -> None:
    # A layer no other test has, so that its unpack really commits a snapshot.
    unique = uuid.uuid4().hex.encode()
    built = image_builder.build(
        [RawLayer((Entry("etc/unique", data=unique),))], name="agent-events"
    )
    archive = built.export_archive(tmp_path / "events.tar")
    name = "agent-containerd/events:latest"
    cid = "agent-ctd-events-" + unique.decode()[:8]
    with client.subscribe([f'namespace=="{containerd.namespace}"'], timeout=60) as sub:
        time.sleep(0.3)  # let containerd register the subscriber
        containerd.ctr(
            "images", "import", "--snapshotter", "overlayfs", "--index-name", name, str(archive)
        )  # fmt: skip
        # An image record that targets an index resolves to the same manifest.
        resolved = resolve_image_layers(client, name)
        assert client.get_image(name).media_type.endswith("image.index.v1+json")
        assert resolved.manifest_digest == built.manifest_digest
        containerd.ctr("containers", "create", "--snapshotter", "overlayfs", name, cid)
        containerd.ctr("containers", "delete", cid)
        containerd.ctr("images", "rm", name)
        seen = []
        for event in sub:
            seen.append(event)
            if event.topic == "/images/delete":
                break
    topics = [e.topic for e in seen]
    assert {"/images/create", "/containers/create", "/containers/delete"} <= set(topics)
    payloads = [e.payload for e in seen]
    assert any(isinstance(p, ImageCreate) and p.name == name for p in payloads)
    created = [p for p in payloads if isinstance(p, ContainerCreate)]
    assert created[0].id == cid and created[0].image == name
    assert ContainerDelete(id=cid) in payloads
    # Unpacking (again) commits each layer's snapshot under its chainID.
    commits = {p.name for p in payloads if isinstance(p, SnapshotCommit)}
    assert commits == {layer.chain_id for layer in resolved.layers}
    assert all(e.namespace == containerd.namespace for e in seen)


def test_running_container(
    client: ContainerdClient,
    containerd: Containerd,
    imported_sample: str,
    run_container: Callable[..., str],
) -> None:
    with client.subscribe(['topic~="/tasks/"'], timeout=60) as sub:
        time.sleep(0.3)
        cid = run_container(imported_sample, "/bin/sh", "-c", "sleep 600")
        start = next(e.payload for e in sub if isinstance(e.payload, TaskStart))
    assert start.container_id == cid

    task = client.get_task(cid)
    assert task.status is TaskStatus.RUNNING and task.pid == start.pid
    assert cid in {t.container_id for t in client.list_tasks()}
    container = next(c for c in client.list_containers() if c.id == cid)
    assert container.snapshot_key == cid and container.snapshotter == "overlayfs"
    assert client.snapshot_stat(cid).kind is SnapshotKind.ACTIVE

    where = container_rootfs(client, cid, state_dir=containerd.state)
    layers = resolve_image_layers(client, imported_sample).layers
    assert where.lowerdirs == tuple(reversed([layer.snapshot_dir for layer in layers]))
    assert where.upperdir is not None and where.upperdir.is_dir()
    assert (where.rootfs / "bin" / "busybox").is_file()
    assert (where.rootfs / "etc" / "app.conf").read_bytes() == b"level=2\n"

    # A write inside the container lands in the upperdir.
    containerd.ctr("tasks", "exec", "--exec-id", "w1", cid, "/bin/sh", "-c", "echo x > /drift")
    assert (where.upperdir / "drift").read_bytes() == b"x\n"

    client.pause(cid)
    assert _wait_status(client, cid, TaskStatus.PAUSED) is TaskStatus.PAUSED
    client.resume(cid)
    assert _wait_status(client, cid, TaskStatus.RUNNING) is TaskStatus.RUNNING

    with client.subscribe(['topic=="/tasks/exit"'], timeout=60) as sub:
        time.sleep(0.3)
        client.kill(cid, signal.SIGKILL)
        exit_event = next(e for e in sub if e.payload is not None)
    assert exit_event.topic == "/tasks/exit"
    assert _wait_status(client, cid, TaskStatus.STOPPED) is TaskStatus.STOPPED
    assert client.get_task(cid).exit_status == 128 + signal.SIGKILL
