# SPDX-License-Identifier: Apache-2.0
"""Decompress a layer blob and hash its uncompressed bytes in the same pass.

The server must check each layer's uncompressed sha256 against the config's
``rootfs.diff_ids`` without reading the blob twice (issue 3, item 1): wrap the
decompressed stream in :class:`HashingReader`, build the manifest from it,
then read its digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

import zstandard

from attestor.digests import Digest
from attestor.errors import InvalidInput
from attestor.manifest._model import FileManifest, ManifestLimits
from attestor.manifest._tar import manifest_from_tar

__all__ = [
    "LAYER_MEDIA_TYPES",
    "HashingReader",
    "LayerScan",
    "manifest_from_layer_blob",
    "open_decompressed",
]

_GZIP = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
_ZSTD = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
_PLAIN = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
    }
)
#: Every layer media type :func:`open_decompressed` accepts.
LAYER_MEDIA_TYPES = _GZIP | _ZSTD | _PLAIN


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes (sha256) and counts what passes through."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` and hash what was read."""
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative) and hash them."""
        data = self._inner.read() if size is None or size < 0 else self._inner.read(size)
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read (and hash) the rest of the stream."""
        while self.read(chunk):
            pass

    @property
    def digest(self) -> Digest:
        """``sha256:<hex>`` of the bytes read so far."""
        return Digest("sha256:" + self._hash.hexdigest())


def open_decompressed(fileobj: BinaryIO, media_type: str) -> BinaryIO:
    """Wrap a layer blob stream so that reading it yields the uncompressed tar.

    Media type parameters (after ``;``) are ignored.

    Raises:
        InvalidInput: for a media type that is not a known layer type (fail
            closed: a foreign compression must not be read as a tar).
    """
    base = media_type.split(";", 1)[0].strip()
    if base in _GZIP:
        return cast(BinaryIO, gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if base in _ZSTD:
        # read_across_frames: zstd layers may be several concatenated frames.
        reader = zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True)
        return cast(BinaryIO, reader)
    if base in _PLAIN:
        return fileobj
    raise InvalidInput(f"unsupported layer media type {media_type[:200]!r}")


@dataclass(frozen=True)
class LayerScan:
    """What one pass over a layer blob yields.

    Attributes:
        manifest: the layer's file manifest.
        diff_id: ``sha256:<hex>`` of the uncompressed tar (the OCI diffID).
        uncompressed_size: bytes of the uncompressed tar.
    """

    manifest: FileManifest
    diff_id: Digest
    uncompressed_size: int


def manifest_from_layer_blob(
    blob: BinaryIO,
    media_type: str,
    *,
    limits: ManifestLimits | None = None,
    lower: Sequence[FileManifest] = (),
) -> LayerScan:
    """Decompress, hash and build the manifest of a layer blob in one pass.

    The caller still checks the blob's own (compressed) digest, e.g. by
    wrapping ``blob`` in a :class:`HashingReader` first, and compares
    ``diff_id`` with the config's ``rootfs.diff_ids``.

    Raises:
        InvalidInput: on an unknown media type or corrupt data.
        TooLarge: when a cap in ``limits`` is exceeded.
    """
    hashing = HashingReader(open_decompressed(blob, media_type))
    manifest = manifest_from_tar(cast(BinaryIO, hashing), limits=limits, lower=lower)
    hashing.drain()
    return LayerScan(manifest, hashing.digest, hashing.bytes_read)
