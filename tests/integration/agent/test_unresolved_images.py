# SPDX-License-Identifier: Apache-2.0
"""A running container whose image cannot be checked is a finding, on real containerd.

Before, a container whose image record was deleted, whose blobs were gone, or
whose image name was moved to another image was skipped with a log line (or,
for the retag, the agent checked the other image's snapshots): silence.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.check import check_once, run_check
from agent.config import AgentConfig
from agent.containerd import resolve_image_layers
from tests.harness.images import BuiltImage, ImageBuilder, RawLayer
from tests.harness.layers import Entry
from tests.integration.agent._integrity_node import (
    NOW,
    Node,
    attested_manifests,
    node,
    sample_tar,
)
from tests.unit.agent._integrity_sim import SimServer

__all__ = ["node", "sample_tar"]  # fixtures used here


@pytest.fixture(scope="module")
def other(
    image_builder: ImageBuilder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BuiltImage, Path]:
    """A one-layer image that is not the sample, and its archive for ``ctr images import``."""
    built = image_builder.build([RawLayer((Entry("etc/other", data=b"other\n"),))], name="other")
    return built, built.export_archive(tmp_path_factory.mktemp("other") / "other.tar")


def test_a_container_whose_image_record_is_deleted_is_unverified(node: Node) -> None:
    cid = node.run()
    node.ctr("images", "rm", node.image)
    report = run_check([node.client], node.attested, now=NOW)
    (v,) = report.sweep.violations
    assert (v.container_id, v.kind, v.layer_digest, v.path) == (cid, "unverified", None, None)
    # check --once never saw the image: its digest is unknown, not invented.
    assert v.image_digest is None
    assert v.detail["reason"].startswith(f"image {node.image} not checked: ")
    assert "not found" in v.detail["reason"]
    assert v.to_dict()["image_digest"] is None  # the schema accepts it
    assert report.exit_code == 1


def test_a_container_whose_config_blob_is_gone_is_unverified_with_its_digest(
    node: Node,
) -> None:
    cid = node.run()
    resolved = resolve_image_layers(node.client, node.image)
    image_digest = node.client.get_image(node.image).target_digest
    node.ctr("content", "rm", resolved.config_digest)
    report = run_check([node.client], node.attested, now=NOW)
    (v,) = report.sweep.violations
    assert (v.container_id, v.kind, v.image_digest) == (cid, "unverified", image_digest)
    assert resolved.config_digest in v.detail["reason"]
    assert report.exit_code == 1


@pytest.mark.parametrize("unpack", [True, False], ids=["unpacked", "not-unpacked"])
def test_an_image_name_moved_to_another_image_is_unverified(
    node: Node, other: tuple[BuiltImage, Path], unpack: bool
) -> None:
    built, other_tar = other
    node.attested.manifests.update(attested_manifests(built))  # attested, and benign
    cid = node.run()
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    # The name now points to another attested image, whose layers the
    # container does not run on. Unpacked, the agent used to check that
    # image's (clean) snapshots; not unpacked, it logged an error. Either way
    # the tampered file went unreported.
    node.ctr("images", "rm", node.image)
    flags = () if unpack else ("--no-unpack",)
    node.ctr("images", "import", "--snapshotter", "overlayfs", *flags, "--base-name",
             "integrity/other", str(other_tar))  # fmt: skip
    node.ctr("images", "tag", "--force", "integrity/other:latest", node.image)
    report = run_check([node.client], node.attested, now=NOW)
    (v,) = report.sweep.violations
    assert (v.container_id, v.kind) == (cid, "unverified")
    assert "rootfs is built on" in v.detail["reason"]
    assert v.image_digest == node.client.get_image(node.image).target_digest
    assert report.exit_code == 1


def test_repeated_checks_count_a_pending_layer_from_its_first_sighting(
    node: Node, tmp_path: Path
) -> None:
    # A server that accepts every request and never answers: each layer stays
    # pending. Each `check --once` is a new process; the first sighting is
    # kept in the state dir, so a check past the grace period is a violation.
    server = SimServer(defer=True)
    config = AgentConfig(containerd_address=node.containerd.address,
                         namespaces=(node.namespace,), state_dir=tmp_path / "state",
                         server="http://127.0.0.1:1", token="t", pending_grace=60)  # fmt: skip
    cid = node.run()
    first = check_once(config, server=server, containerd=[node.client], now=NOW,
                       clock=time.monotonic)  # fmt: skip
    assert first.sweep.violations == () and first.exit_code == 2
    later = NOW + timedelta(seconds=60)
    second = check_once(config, server=server, containerd=[node.client], now=later,
                        clock=time.monotonic)  # fmt: skip
    assert {(v.container_id, v.layer_digest, v.kind) for v in second.sweep.violations} == {
        (cid, x.digest, "unverified") for x in node.layers()
    }
    assert second.exit_code == 1


def test_a_tag_moved_while_the_container_runs_is_checked_against_its_own_image(
    node: Node, other: tuple[BuiltImage, Path]
) -> None:
    # A tag re-pulled while the container runs (as with a mutable tag): its
    # own image keeps another record in the repository, and the agent finds
    # it by the rootfs's layer chain, rather than killing a sound container.
    built, other_tar = other
    node.attested.manifests.update(attested_manifests(built))
    cid = node.run()
    own = node.client.get_image(node.image).target_digest
    node.ctr("images", "tag", node.image, "integrity/sample:previous")
    node.ctr("images", "rm", node.image)
    node.ctr("images", "import", "--snapshotter", "overlayfs", "--base-name",
             "integrity/other", str(other_tar))  # fmt: skip
    node.ctr("images", "tag", "--force", "integrity/other:latest", node.image)
    clean = run_check([node.client], node.attested, now=NOW)
    assert clean.sweep.violations == () and clean.exit_code == 0, clean.errors
    base = node.layers_of("integrity/sample:previous")[0]
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    (v,) = run_check([node.client], node.attested, now=NOW).sweep.violations
    assert (v.container_id, v.image_digest, v.layer_digest, v.path, v.kind) == (
        cid, own, base.digest, "etc/hostname", "content",
    )  # fmt: skip
