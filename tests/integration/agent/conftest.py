# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the agent's containerd tests: a client and the imported sample image."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.containerd.client import ContainerdClient
from tests.harness.images import BuiltImage
from tests.harness.services import Containerd

#: Image name this area imports the sample under (unique to avoid clashing
#: with other areas sharing the session's containerd namespace).
SAMPLE_BASE = "agent-containerd/sample"


@pytest.fixture
def client(containerd: Containerd) -> Iterator[ContainerdClient]:
    with ContainerdClient(containerd.address, containerd.namespace, timeout=20) as c:
        yield c


@pytest.fixture(scope="session")
def sample_archive(
    sample_built_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return sample_built_image.export_archive(tmp_path_factory.mktemp("agent-oci") / "sample.tar")


@pytest.fixture(scope="session")
def imported_sample(
    containerd: Containerd, sample_archive: Path, sample_built_image: BuiltImage
) -> str:
    """The sample image imported and unpacked into overlayfs; returns its name."""
    # --base-name names the manifest itself ("BASE:<ref.name>"); the events
    # test imports with --index-name to cover an image that targets an index.
    containerd.ctr(
        "images", "import", "--snapshotter", "overlayfs", "--base-name", SAMPLE_BASE,
        str(sample_archive),
    )  # fmt: skip
    return f"{SAMPLE_BASE}:{sample_built_image.tag}"


@pytest.fixture
def run_container(containerd: Containerd) -> Iterator[Callable[..., str]]:
    """Start ``ctr run -d`` containers; kill and delete them afterwards."""
    started: list[str] = []

    def start(image: str, *cmd: str) -> str:
        cid = "agent-ctd-" + uuid.uuid4().hex[:10]
        started.append(cid)
        containerd.ctr("run", "-d", "--snapshotter", "overlayfs", image, cid, *cmd)
        return cid

    yield start
    for cid in started:
        containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
        for _ in range(50):
            res = containerd.ctr("tasks", "delete", cid, check=False)
            if res.returncode == 0 or "not found" in res.stderr:
                break
            subprocess.run(["sleep", "0.1"], check=False)
        containerd.ctr("containers", "delete", cid, check=False)
