# SPDX-License-Identifier: Apache-2.0
"""Build multi-layer OCI images offline with umoci and push them with skopeo."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.harness import _proc
from tests.harness._proc import ServiceError
from tests.harness.binaries import require
from tests.harness.layers import Entry, layer_tar

__all__ = [
    "BuiltImage",
    "Changes",
    "ImageBuilder",
    "LayerInfo",
    "PushedImage",
    "RawLayer",
]

Compression = Literal["gzip", "zstd", "none"]

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Changes:
    """A layer umoci computes from edits to the unpacked rootfs (``edit(rootfs)``)."""

    edit: Callable[[Path], None]
    comment: str = ""


@dataclass(frozen=True)
class RawLayer:
    """A layer added verbatim from explicit tar entries (``umoci raw add-layer``)."""

    entries: tuple[Entry, ...]
    comment: str = ""


LayerSpec = Changes | RawLayer


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the manifest and config describe it."""

    digest: str
    diff_id: str
    media_type: str
    size: int


@dataclass(frozen=True)
class BuiltImage:
    """An OCI image layout on disk holding one tagged image."""

    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layers: tuple[LayerInfo, ...]

    def blob(self, digest: str) -> Path:
        """Return the path of a blob in the layout."""
        algo, hexdigest = digest.split(":", 1)
        return self.layout / "blobs" / algo / hexdigest

    @property
    def manifest_bytes(self) -> bytes:
        return self.blob(self.manifest_digest).read_bytes()

    @property
    def config_bytes(self) -> bytes:
        return self.blob(self.config_digest).read_bytes()

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    def layer_tar(self, index: int) -> bytes:
        """Return layer ``index`` uncompressed (the bytes its diff_id hashes)."""
        layer = self.layers[index]
        return _decompress(self.blob(layer.digest).read_bytes(), layer.media_type)

    def export_archive(self, dest: Path) -> Path:
        """Write the layout as an OCI archive tar for ``ctr images import``; return ``dest``."""
        with tarfile.open(dest, "w") as tar:
            for name in ("oci-layout", "index.json", "blobs"):
                tar.add(self.layout / name, arcname=name)
        return dest


@dataclass(frozen=True)
class PushedImage:
    """A built image as pushed to a registry."""

    image: BuiltImage
    host: str
    repo: str
    tag: str
    manifest_digest: str

    @property
    def by_digest(self) -> str:
        """``127.0.0.1:PORT/repo@sha256:...``"""
        return f"{self.host}/{self.repo}@{self.manifest_digest}"

    @property
    def by_tag(self) -> str:
        """``127.0.0.1:PORT/repo:tag``"""
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return self.image.layers

    @property
    def config_digest(self) -> str:
        return self.image.config_digest


class ImageBuilder:
    """Makes OCI images in ``workdir`` without network access.

    Args:
        workdir: where layouts and scratch bundles go.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._count = 0

    def build(
        self,
        layers: Sequence[LayerSpec],
        *,
        name: str = "image",
        tag: str = "latest",
        compression: Compression = "gzip",
        cmd: Sequence[str] = (),
    ) -> BuiltImage:
        """Build an image with one layer per spec, in order.

        Raises:
            ServiceError: when umoci or skopeo fail.
        """
        umoci = require("umoci")
        self._count += 1
        base = self.workdir / f"{self._count:03d}-{name}"
        base.mkdir(parents=True)
        layout = base / "oci"
        ref = f"{layout}:{tag}"
        _run([umoci, "init", "--layout", str(layout)])
        _run([umoci, "new", "--image", ref])
        if cmd:
            _run([umoci, "config", "--image", ref, *(f"--config.cmd={c}" for c in cmd)])
        for i, spec in enumerate(layers):
            history = [f"--history.comment={spec.comment}"] if spec.comment else []
            if isinstance(spec, RawLayer):
                tar_path = base / f"raw-{i}.tar"
                tar_path.write_bytes(layer_tar(spec.entries))
                _run([umoci, "raw", "add-layer", "--image", ref, *history, str(tar_path)])
                continue
            bundle = base / f"bundle-{i}"
            _run([umoci, "unpack", "--image", ref, str(bundle)])
            spec.edit(bundle / "rootfs")
            _run([umoci, "repack", "--image", ref, *history, str(bundle)])
            shutil.rmtree(bundle)
        if compression == "zstd":
            converted = base / "oci-zstd"
            _run(
                [
                    require("skopeo"),
                    "copy",
                    "--quiet",
                    "--dest-compress-format",
                    "zstd",
                    f"oci:{layout}:{tag}",
                    f"oci:{converted}:{tag}",
                ]  # fmt: skip
            )
            layout = converted
        elif compression == "none":
            _decompress_layout(layout, tag)
        return read_layout(layout, tag)

    def push(
        self, image: BuiltImage, registry: Any, repo: str, tag: str | None = None
    ) -> PushedImage:
        """Push ``image`` to ``registry`` (anything with ``.host``) as ``repo:tag``.

        Layers keep their compression, so the pushed manifest digest equals the
        built one. Uncompressed layers go through our own small uploader, since
        skopeo always compresses them for a registry (measured, skopeo 1.9).

        Raises:
            ServiceError: when the push fails or the registry's digest differs.
        """
        tag = tag or image.tag
        host: str = registry.host
        if any(layer.media_type == MT_LAYER_TAR for layer in image.layers):
            from tests.harness._upload import upload_image

            pushed_digest = upload_image(image, f"http://{host}", repo, tag)
        else:
            digest_file = self.workdir / f"push-{self._count}-{repo.replace('/', '_')}.digest"
            self._count += 1
            _run(
                [
                    require("skopeo"),
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    "--format",
                    "oci",
                    "--digestfile",
                    str(digest_file),
                    f"oci:{image.layout}:{image.tag}",
                    f"docker://{host}/{repo}:{tag}",
                ]  # fmt: skip
            )
            pushed_digest = digest_file.read_text().strip()
        if pushed_digest != image.manifest_digest:
            raise ServiceError(
                f"pushed manifest digest {pushed_digest} != built {image.manifest_digest}"
            )
        return PushedImage(image, host, repo, tag, pushed_digest)


def read_layout(layout: Path, tag: str) -> BuiltImage:
    """Describe the image tagged ``tag`` in an OCI layout.

    Raises:
        ServiceError: when the tag is not in index.json.
    """
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            manifest_digest: str = desc["digest"]
            break
    else:
        raise ServiceError(f"tag {tag!r} not in {layout}/index.json")
    manifest = json.loads(_blob(layout, manifest_digest).read_bytes())
    config_digest: str = manifest["config"]["digest"]
    config = json.loads(_blob(layout, config_digest).read_bytes())
    layers = tuple(
        LayerInfo(d["digest"], diff_id, d["mediaType"], d["size"])
        for d, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)
    )
    return BuiltImage(layout, tag, manifest_digest, config_digest, layers)


def _blob(layout: Path, digest: str) -> Path:
    algo, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algo / hexdigest


def _write_blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(layout, digest).write_bytes(data)
    return digest


def _decompress(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("+gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    return data


def _decompress_layout(layout: Path, tag: str) -> None:
    """Rewrite the tagged image with uncompressed layers, in place.

    Written by hand: skopeo's oci: destination only keeps layers uncompressed
    when the source already is (measured, skopeo 1.9).
    """
    image = read_layout(layout, tag)
    manifest = json.loads(image.manifest_bytes)
    for desc in manifest["layers"]:
        raw = _decompress(_blob(layout, desc["digest"]).read_bytes(), desc["mediaType"])
        desc.update(mediaType=MT_LAYER_TAR, digest=_write_blob(layout, raw), size=len(raw))
    body = json.dumps(manifest, separators=(",", ":")).encode()
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc["digest"] == image.manifest_digest:
            desc.update(digest=_write_blob(layout, body), size=len(body))
    (layout / "index.json").write_text(json.dumps(index, separators=(",", ":")))


def _run(argv: list[str]) -> None:
    res = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_proc.env_with_path(),
        timeout=300,
        check=False,
    )
    if res.returncode != 0:
        raise ServiceError(
            f"{Path(argv[0]).name} {argv[1]} failed with code {res.returncode}:\n"
            f"{res.stdout}{res.stderr}"
        )
