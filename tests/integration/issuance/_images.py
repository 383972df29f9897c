# SPDX-License-Identifier: Apache-2.0
"""Small images pushed with our registry client, each with unique blobs."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass
from typing import Any

from attestor.digests import sha256_digest
from attestor.registry import BlobCache, RegistryClient, parse_reference
from attestor.registry.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST


@dataclass(frozen=True)
class Pushed:
    name: str
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]

    @property
    def by_tag(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.name}@{self.manifest_digest}"


def client_for(host: str, cache_dir: Any) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset({host}), cache=BlobCache(cache_dir), timeout=5.0
    )


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def push(
    client: RegistryClient,
    name: str,
    tag: str,
    *,
    layers: int = 2,
    config_media_type: str = OCI_CONFIG,
    wrong_diff_id: bool = False,
    config_padding: int = 0,
    repeat_first_layer: bool = False,
) -> Pushed:
    """Push an image with ``layers`` random gzip layers.

    ``wrong_diff_id`` lists the first layer's diffID as another digest;
    ``config_padding`` makes the config that many bytes larger;
    ``repeat_first_layer`` makes every layer a copy of the first.
    """
    ref = parse_reference(f"{name}:{tag}")
    raws = [_tar({f"f{i}.bin": os.urandom(1024)}) for i in range(layers)]
    if repeat_first_layer:
        raws = [raws[0]] * layers
    blobs = [gzip.compress(raw, mtime=0) for raw in raws]
    diff_ids = [sha256_digest(raw) for raw in raws]
    listed = list(diff_ids)
    if wrong_diff_id:
        listed[0] = sha256_digest(b"not this layer")
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": listed},
            "history": [
                {"created_by": "ENV A=1", "empty_layer": True},
                *(
                    {"created_by": f"COPY f{i}.bin /", "comment": f"layer {i}"}
                    for i in range(layers)
                ),
            ],
            "comment": "x" * config_padding,
        },
        sort_keys=True,
    ).encode()
    for blob in blobs:
        client.push_blob(ref, blob)
    client.push_blob(ref, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(config_media_type, config),
            "layers": [_descriptor(OCI_LAYER_GZIP, blob) for blob in blobs],
        }
    ).encode()
    digest = client.push_manifest(ref, manifest, OCI_MANIFEST, tag=tag)
    return Pushed(
        name=name,
        tag=tag,
        manifest_digest=digest,
        config_digest=sha256_digest(config),
        layer_digests=tuple(sha256_digest(b) for b in blobs),
        diff_ids=tuple(diff_ids),
    )


def push_layers(
    client: RegistryClient,
    name: str,
    tag: str,
    layers: list[tuple[bytes, str]],
    *,
    media_type: str = OCI_LAYER_GZIP,
) -> str:
    """Push an image of the given ``(blob, diffID)`` layers; returns ``name:tag``."""
    ref = parse_reference(f"{name}:{tag}")
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": [{"created_by": f"{tag} {i}"} for i in range(len(layers))],
        }
    ).encode()
    for blob, _ in layers:
        client.push_blob(ref, blob)
    client.push_blob(ref, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(media_type, blob) for blob, _ in layers],
        }
    ).encode()
    client.push_manifest(ref, manifest, OCI_MANIFEST, tag=tag)
    return f"{name}:{tag}"
