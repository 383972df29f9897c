# SPDX-License-Identifier: Apache-2.0
"""Synthetic images pushed with our own client (which also tests the push path)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass
from typing import Any

from attestor.digests import sha256_digest
from attestor.registry import RegistryClient, parse_reference
from attestor.registry.media_types import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST


def layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip blob) with reproducible headers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


@dataclass(frozen=True)
class Pushed:
    name: str  # registry/repository
    tag: str
    manifest_digest: str
    manifest: bytes
    config_digest: str
    layer_digests: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    diff_ids: tuple[str, ...]


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def push_image(
    client: RegistryClient,
    name: str,
    tag: str,
    *,
    layers: int = 2,
    arch: str = "amd64",
    config_media_type: str = OCI_CONFIG,
    layer_media_type: str = OCI_LAYER_GZIP,
) -> Pushed:
    """Push an image with ``layers`` random layers (so its blobs are unique)."""
    ref = parse_reference(f"{name}:{tag}")
    tars = [layer({f"f{i}.bin": os.urandom(2048)}) for i in range(layers)]
    diff_ids = [sha256_digest(raw) for raw, _ in tars]
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created_by": "ENV A=1", "empty_layer": True},
                *({"created_by": f"COPY f{i}.bin /"} for i in range(layers)),
            ],
        },
        sort_keys=True,
    ).encode()
    for _, blob in tars:
        client.push_blob(ref, blob)
    client.push_blob(ref, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config_media_type, config),
            "layers": [descriptor(layer_media_type, blob) for _, blob in tars],
        }
    ).encode()
    digest = client.push_manifest(ref, manifest, OCI_MANIFEST, tag=tag)
    return Pushed(
        name=name,
        tag=tag,
        manifest_digest=digest,
        manifest=manifest,
        config_digest=sha256_digest(config),
        layer_digests=tuple(sha256_digest(b) for _, b in tars),
        layer_sizes=tuple(len(b) for _, b in tars),
        diff_ids=tuple(diff_ids),
    )


def push_index(client: RegistryClient, name: str, tag: str, images: list[Pushed]) -> str:
    """Push an OCI index over ``images`` (each pushed under its own tag first)."""
    entries = []
    for image in images:
        arch = "arm64" if "arm" in image.tag else "amd64"
        entries.append(
            descriptor(OCI_MANIFEST, image.manifest, platform={"os": "linux", "architecture": arch})
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return client.push_manifest(parse_reference(f"{name}:{tag}"), index, OCI_INDEX, tag=tag)
