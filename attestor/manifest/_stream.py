# SPDX-License-Identifier: Apache-2.0
"""Decompress a layer blob and hash its uncompressed bytes in the same pass.

The server must check each layer's uncompressed sha256 against the config's
``rootfs.diff_ids`` without reading the blob twice: wrap the decompressed
stream in :class:`HashingReader`, build the manifest from it, then read its
digest.

Every uncompressed byte, tar headers, padding and whatever follows the
end-of-archive blocks included, is counted where it leaves the decompressor,
so no reading of the tar can make the server decompress more than
:attr:`ManifestLimits.max_uncompressed_bytes` or expand one compressed byte
into more than :attr:`ManifestLimits.max_expansion_ratio` bytes.
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
from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._model import FileManifest
from attestor.manifest._tar import manifest_from_tar

__all__ = [
    "LAYER_MEDIA_TYPES",
    "HashingReader",
    "LayerScan",
    "ScanBudgetExceeded",
    "manifest_from_layer_blob",
    "open_decompressed",
    "uncompressed_cap",
]

# Bytes a legitimate tar spends on one entry besides its content: its header,
# the padding of its content to 512 bytes, and a PAX or GNU long-name header
# plus a long-link header, each carrying up to ``max_path_bytes`` (rounded up).
_BLOCK = 512
_HEADER_BLOCKS = 3
# The end-of-archive blocks and the zeros writers pad the last record with.
_TRAILER_ALLOWANCE = 1 << 20

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

    #: Subclasses that only count turn this off.
    _hashing = True

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._source = inner
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` and hash what was read."""
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._hashing:
            self._hash.update(data)
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative) and hash them."""
        data = self._source.read() if size is None or size < 0 else self._source.read(size)
        if self._hashing:
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


class ScanBudgetExceeded(TooLarge):
    """The layer decompresses to more than the caller's read budget.

    Not a refusal of the layer: the caller asked to stop early (the API's
    inline budget) and scans it again elsewhere without the budget.
    """


def uncompressed_cap(limits: ManifestLimits) -> int:
    """The most uncompressed tar bytes one layer may have under ``limits``.

    ``limits.max_uncompressed_bytes`` when set; otherwise every regular-file
    byte ``max_total_size`` allows, plus a header allowance for each of
    ``max_entries`` entries, plus the end-of-archive record.
    """
    if limits.max_uncompressed_bytes is not None:
        return limits.max_uncompressed_bytes
    long_header = _BLOCK + -(-limits.max_path_bytes // _BLOCK) * _BLOCK
    per_entry = _HEADER_BLOCKS * _BLOCK + 2 * long_header
    return limits.max_total_size + limits.max_entries * per_entry + _TRAILER_ALLOWANCE


class _CountingReader(HashingReader):
    """Counts the compressed bytes a decompressor pulls from the blob (no hashing)."""

    _hashing = False


class _BoundedReader(io.RawIOBase):
    """The decompressed stream, refused as soon as it passes a cap.

    At most one byte past the cap is ever asked of the decompressor, and
    ``read(-1)`` goes through :meth:`readinto` in chunks, so neither memory
    nor work can run past it.
    """

    def __init__(
        self,
        inner: BinaryIO,
        compressed: _CountingReader | None,
        limits: ManifestLimits,
        budget: int | None,
    ) -> None:
        super().__init__()
        self._source = inner
        self._compressed = compressed
        self._cap = uncompressed_cap(limits)
        self._budget = budget
        self._ratio = limits.max_expansion_ratio
        self._floor = limits.expansion_floor_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Decompress into ``buffer``, at most up to one byte past the tightest bound.

        Raises:
            ScanBudgetExceeded: past the caller's budget.
            TooLarge: past the cap or the expansion ratio.
        """
        stop = self._cap if self._budget is None else min(self._cap, self._budget)
        want = min(len(buffer), stop + 1 - self.bytes_read)
        if want <= 0:
            return 0  # zstd fails on an empty output buffer
        view = memoryview(buffer)[:want]
        readinto = getattr(self._source, "readinto", None)
        if readinto is not None:
            n = int(readinto(view) or 0)
        else:
            data = self._source.read(want)
            n = len(data)
            view[:n] = data
        self.bytes_read += n
        self._check()
        return n

    def _check(self) -> None:
        total = self.bytes_read
        if self._budget is not None and total > self._budget:
            raise ScanBudgetExceeded(
                f"layer decompresses to more than the read budget of {self._budget} bytes",
                detail={"limit": "budget", "max": self._budget},
            )
        if total > self._cap:
            raise TooLarge(
                f"layer decompresses to more than {self._cap} bytes",
                detail={"limit": "max_uncompressed_bytes", "max": self._cap},
            )
        if self._ratio is not None and self._compressed is not None and total > self._floor:
            compressed = max(1, self._compressed.bytes_read)
            if total > self._ratio * compressed:
                raise TooLarge(
                    f"layer expands {total} bytes from {compressed} compressed bytes, "
                    f"more than {self._ratio}:1",
                    detail={"limit": "max_expansion_ratio", "max": self._ratio},
                )


def open_decompressed(
    fileobj: BinaryIO,
    media_type: str,
    *,
    limits: ManifestLimits | None = None,
    budget: int | None = None,
) -> BinaryIO:
    """Wrap a layer blob stream so that reading it yields the uncompressed tar.

    Media type parameters (after ``;``) are ignored. The returned stream
    raises as soon as it yields more bytes than ``limits`` allow, whatever
    reads it (see :func:`uncompressed_cap`).

    Args:
        fileobj: the layer blob, as stored in the registry.
        media_type: the layer's media type from the image manifest.
        limits: the caps; the defaults when ``None``.
        budget: when set, stop with :class:`ScanBudgetExceeded` past this many
            uncompressed bytes (a caller's own bound, below the caps).

    Raises:
        InvalidInput: for a media type that is not a known layer type (fail
            closed: a foreign compression must not be read as a tar).
    """
    limits = limits or ManifestLimits()
    base = media_type.split(";", 1)[0].strip()
    counting = _CountingReader(fileobj)
    source = cast(BinaryIO, counting)
    if base in _GZIP:
        inner = cast(BinaryIO, gzip.GzipFile(fileobj=source, mode="rb"))
    elif base in _ZSTD:
        # read_across_frames: zstd layers may be several concatenated frames.
        reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        inner = cast(BinaryIO, reader)
    elif base in _PLAIN:
        # Nothing expands, but headers, padding and trailer still count.
        return cast(BinaryIO, _BoundedReader(fileobj, None, limits, budget))
    else:
        raise InvalidInput(f"unsupported layer media type {media_type[:200]!r}")
    return cast(BinaryIO, _BoundedReader(inner, counting, limits, budget))


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
    budget: int | None = None,
) -> LayerScan:
    """Decompress, hash and build the manifest of a layer blob in one pass.

    The caller still checks the blob's own (compressed) digest, e.g. by
    wrapping ``blob`` in a :class:`HashingReader` first, and compares
    ``diff_id`` with the config's ``rootfs.diff_ids``.

    Args:
        blob: the layer blob.
        media_type: the layer's media type.
        limits: the caps (entries, paths, sizes, uncompressed bytes, ratio).
        lower: the manifests of the layers below, topmost first.
        budget: stop past this many uncompressed bytes (see
            :func:`open_decompressed`).

    Raises:
        InvalidInput: on an unknown media type or corrupt data.
        TooLarge: when a cap in ``limits`` is exceeded.
        ScanBudgetExceeded: past ``budget`` uncompressed bytes.
    """
    decompressed = open_decompressed(blob, media_type, limits=limits, budget=budget)
    hashing = HashingReader(decompressed)
    manifest = manifest_from_tar(cast(BinaryIO, hashing), limits=limits, lower=lower)
    hashing.drain()
    return LayerScan(manifest, hashing.digest, hashing.bytes_read)
