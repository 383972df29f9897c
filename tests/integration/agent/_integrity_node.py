# SPDX-License-Identifier: Apache-2.0
"""A namespace of its own with the sample image imported, for the integrity tests.

Each test gets a fresh namespace (its own snapshot directories), so host
tampering never leaks into another test. Attested manifests are computed from
the image's layer blobs, which is what the server signs.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.check import run_check
from agent.containerd import ContainerdClient, LayerInfo, resolve_image_layers
from agent.integrity.attestation import LayerAttestation
from agent.report import Violation
from attestor.digests import Digest
from attestor.manifest import FileManifest, manifest_from_layer_blob
from tests.harness.binaries import require
from tests.harness.images import BuiltImage
from tests.harness.services import Containerd

__all__ = ["IMAGE", "NOW", "Node", "StaticAttestations", "attested_manifests", "node", "sample_tar"]

NOW = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
IMAGE = "integrity/sample:latest"


class StaticAttestations:
    """Attested manifests by layer digest (what a verified statement would give)."""

    def __init__(self, manifests: dict[str, FileManifest]) -> None:
        self.manifests = manifests

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation:
        manifest = self.manifests.get(layer.digest)
        if manifest is None:
            return LayerAttestation(layer.digest, "unattested", reason="no attestation")
        return LayerAttestation(
            layer.digest, "valid", attestation_id="att-" + layer.digest[7:19], manifest=manifest
        )


@dataclass
class Node:
    """One isolated namespace with the sample image imported and unpacked."""

    containerd: Containerd
    namespace: str
    client: ContainerdClient
    image: str
    attested: StaticAttestations
    started: list[str]

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [require("ctr"), "-a", self.containerd.address, "-n", self.namespace, *args]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{argv} failed: {res.stderr}")
        return res

    def run(self) -> str:
        cid = "integ-" + uuid.uuid4().hex[:10]
        self.started.append(cid)
        self.ctr("run", "-d", "--snapshotter", "overlayfs", self.image, cid,
                 "/bin/sh", "-c", "sleep 600")  # fmt: skip
        return cid

    def exec(self, cid: str, script: str) -> None:
        self.ctr("tasks", "exec", "--exec-id", "x" + uuid.uuid4().hex[:8], cid,
                 "/bin/sh", "-c", script)  # fmt: skip

    def layers(self) -> tuple[LayerInfo, ...]:
        return self.layers_of(self.image)

    def layers_of(self, image: str) -> tuple[LayerInfo, ...]:
        return resolve_image_layers(self.client, image).layers

    def check(self) -> list[Violation]:
        report = run_check([self.client], self.attested, now=NOW)
        assert not report.errors, report.errors
        return list(report.sweep.violations)


def attested_manifests(image: BuiltImage) -> dict[str, FileManifest]:
    out: dict[str, FileManifest] = {}
    lower: list[FileManifest] = []
    for layer in image.layers:
        with open(image.blob(layer.digest), "rb") as blob:
            scan = manifest_from_layer_blob(blob, layer.media_type, lower=list(reversed(lower)))
        assert scan.diff_id == layer.diff_id
        out[layer.digest] = scan.manifest
        lower.append(scan.manifest)
    return out


@pytest.fixture(scope="module")
def sample_tar(sample_built_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_built_image.export_archive(tmp_path_factory.mktemp("integ") / "sample.tar")


@pytest.fixture
def node(
    containerd: Containerd, sample_built_image: BuiltImage, sample_tar: Path
) -> Iterator[Node]:
    namespace = f"{containerd.namespace}-i{uuid.uuid4().hex[:6]}"
    client = ContainerdClient(containerd.address, namespace, timeout=20)
    n = Node(containerd, namespace, client, f"{IMAGE.split(':')[0]}:{sample_built_image.tag}",
             StaticAttestations(attested_manifests(sample_built_image)), [])  # fmt: skip
    n.ctr("images", "import", "--snapshotter", "overlayfs", "--base-name",
          IMAGE.split(":")[0], str(sample_tar))  # fmt: skip
    yield n
    for cid in n.started:
        n.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
        for _ in range(50):
            res = n.ctr("tasks", "delete", cid, check=False)
            if res.returncode == 0 or "not found" in res.stderr:
                break
            subprocess.run(["sleep", "0.1"], check=False)
        n.ctr("containers", "delete", cid, check=False)
    client.close()
