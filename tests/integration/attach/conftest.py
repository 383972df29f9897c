# SPDX-License-Identifier: Apache-2.0
"""Fixtures for attaching attestations: a client, a signing key, fresh image copies."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attestor.registry import BlobCache, RegistryClient, parse_reference
from attestor.registry.media_types import OCI_MANIFEST
from attestor.signing.keys import PublicKeyInfo, generate_key_file, load_signer
from tests.harness import _proc
from tests.harness.binaries import require
from tests.harness.services import Registry
from tests.integration.attach._helpers import Image


@pytest.fixture
def client(registry: Any, tmp_path: Path) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset({registry.host}),
        cache=BlobCache(tmp_path / "blobs"),
        timeout=5.0,
    )


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, PublicKeyInfo]:
    uri, info = generate_key_file(tmp_path_factory.mktemp("keys"))
    return load_signer(uri), info


@pytest.fixture
def copy_image(
    client: RegistryClient, registry: Any, sample_built_image: Any
) -> Callable[..., Image]:
    """``copy_image(repo=None, variant=None)``: the sample image in a fresh repository.

    ``variant`` adds a manifest annotation, giving another image (another
    digest) over the same layers. Pushed with our own client: no skopeo run.
    """

    def copy(repo: str | None = None, variant: str | None = None) -> Image:
        built = sample_built_image
        name = f"{registry.host}/{repo or 'attach/' + uuid.uuid4().hex[:12]}"
        target = parse_reference(f"{name}:latest")
        for digest in (built.config_digest, *(layer.digest for layer in built.layers)):
            client.push_blob(target, built.blob(digest).read_bytes())
        manifest = built.manifest_bytes
        if variant is not None:
            doc = json.loads(manifest)
            doc["annotations"] = {"variant": variant}
            manifest = json.dumps(doc).encode()
        tag = "latest" if variant is None else variant
        digest = client.push_manifest(target, manifest, OCI_MANIFEST, tag=tag)
        return Image(
            ref=parse_reference(f"{name}@{digest}"),
            manifest=manifest,
            manifest_digest=digest,
            media_type=OCI_MANIFEST,
            layers=tuple((lyr.digest, lyr.media_type, lyr.diff_id) for lyr in built.layers),
        )

    return copy


@pytest.fixture(scope="module")
def readonly_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A second docker-registry in maintenance read-only mode: every push is refused."""
    workdir = tmp_path_factory.mktemp("readonly-registry")
    service = Registry(workdir)
    binary = require("docker-registry")
    service.port = _proc.free_port()
    (workdir / "storage").mkdir()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        "    readonly:\n      enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{service.port}\n"
    )
    service._proc = _proc.spawn([binary, "serve", str(config)], log=service.log, cwd=workdir)
    try:
        _proc.wait_until(
            service._answers, what="read-only registry", log=service.log, proc=service._proc
        )
        yield service
    finally:
        service.stop()
