# SPDX-License-Identifier: Apache-2.0
"""What Go's ``archive/tar`` makes of a layer, next to what the server makes of it.

Helpers of the differential tests: an OCI layout written by hand around raw
layer tars (umoci and skopeo would re-read or re-pack them), ``umoci raw
unpack`` of one layer (Debian's umoci is Go, ``archive/tar`` of Go 1.19 like
Debian's containerd), and the server's reading as ``manifest_from_tar``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import EntryType, FileManifest, manifest_from_snapshot, manifest_from_tar
from tests.conftest import REPO_ROOT
from tests.harness import _proc
from tests.harness.images import BuiltImage, read_layout

__all__ = [
    "CORPUS_DIR",
    "GoReading",
    "ServerReading",
    "corpus_generator",
    "layout_of",
    "server_reading",
    "umoci_reading",
    "whiteouts",
    "without_overlay_markers",
]

CORPUS_DIR = REPO_ROOT / "tests" / "assets" / "tar-corpus"
_GENERATOR = "tar_corpus_make"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def corpus_generator() -> ModuleType:
    """The corpus generator ``tests/assets/tar-corpus/make_corpus.py`` as a module."""
    loaded = sys.modules.get(_GENERATOR)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(_GENERATOR, CORPUS_DIR / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_GENERATOR] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _put(layout: Path, data: bytes) -> dict[str, object]:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def layout_of(
    dest: Path, layers: Sequence[bytes], *, gzipped: bool = True, tag: str = "latest"
) -> BuiltImage:
    """Write an OCI image layout at ``dest`` whose layers are ``layers`` verbatim.

    Written by hand because ``umoci raw add-layer`` and ``skopeo copy`` read
    or recompress what they add, and these layers must reach the unpacker
    byte for byte (the diffIDs are the sha256 of exactly these bytes).
    """
    (dest / "blobs" / "sha256").mkdir(parents=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descriptors = []
    for raw in layers:
        blob = gzip.compress(raw, mtime=0) if gzipped else raw
        descriptors.append({"mediaType": MT_GZIP if gzipped else MT_TAR, **_put(dest, blob)})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}" for raw in layers],
        },
        "history": [{"created_by": f"corpus layer {i}"} for i in range(len(layers))],
    }
    config_desc = {"mediaType": MT_CONFIG, **_put(dest, json.dumps(config).encode())}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config_desc,
        "layers": descriptors,
    }
    manifest_desc = {"mediaType": MT_MANIFEST, **_put(dest, json.dumps(manifest).encode())}
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    (dest / "index.json").write_text(json.dumps(index))
    return read_layout(dest, tag)


@dataclass(frozen=True)
class ServerReading:
    """The server's reading: a manifest, or the refusal's text."""

    manifest: FileManifest | None
    refusal: str | None


def server_reading(layer: bytes, lower: Sequence[FileManifest] = ()) -> ServerReading:
    """Run ``manifest_from_tar`` on ``layer``; a refusal is InvalidInput or TooLarge."""
    try:
        return ServerReading(manifest_from_tar(io.BytesIO(layer), lower=lower), None)
    except (InvalidInput, TooLarge) as e:
        return ServerReading(None, f"{type(e).__name__}: {e}")


@dataclass(frozen=True)
class GoReading:
    """umoci's reading: the unpacked tree's manifest, or umoci's error."""

    manifest: FileManifest | None
    error: str | None


def umoci_reading(umoci: str, layer: bytes, workdir: Path) -> GoReading:
    """Unpack ``layer`` alone with ``umoci raw unpack`` and scan the tree.

    Runs with umask 022, so the parents umoci creates implicitly get 0755 as
    containerd gives them. The tree is removed afterwards.

    Raises:
        AssertionError: when the unpacked tree cannot be scanned.
    """
    workdir.mkdir(parents=True)
    try:
        image = layout_of(workdir / "oci", [layer])
        rootfs = workdir / "rootfs"
        res = subprocess.run(
            [umoci, "raw", "unpack", "--image", f"{image.layout}:{image.tag}", str(rootfs)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_proc.env_with_path(),
            timeout=120,
            check=False,
            preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509 - a single-threaded child
        )
        if res.returncode != 0:
            return GoReading(None, (res.stderr or res.stdout).strip()[-2000:])
        try:
            return GoReading(manifest_from_snapshot(rootfs), None)
        except (InvalidInput, TooLarge) as e:
            raise AssertionError(f"umoci unpacked a tree we cannot scan: {e}") from e
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def without_overlay_markers(
    manifest: FileManifest, whited_out: frozenset[str] = frozenset()
) -> list[str]:
    """The manifest's entries as JSON lines, without whiteouts, opaque read as dir.

    umoci applies whiteouts by deleting (there is nothing below a single
    layer to delete), and keeps what the same layer wrote before the
    whiteout, where containerd's overlayfs applier stores a 0/0 device over
    it and marks opaque directories with an xattr. So against umoci, paths
    under ``whited_out`` (the server's whiteouts) are left out on both sides.
    """
    lines = []
    for entry in manifest.entries:
        if entry.type is EntryType.WHITEOUT or _under(entry.path, whited_out):
            continue
        doc = entry.to_json()
        if doc["type"] == EntryType.OPAQUE_DIR.value:
            doc["type"] = EntryType.DIR.value
        lines.append(json.dumps(doc, sort_keys=True))
    return lines


def whiteouts(manifest: FileManifest) -> frozenset[str]:
    """The paths ``manifest`` records as whiteouts."""
    return frozenset(e.path for e in manifest.entries if e.type is EntryType.WHITEOUT)


def _under(path: str, roots: frozenset[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)
