# SPDX-License-Identifier: Apache-2.0
"""The caps on one layer's manifest: entries, paths, sizes and tar bytes.

They bound what a hostile layer (or a hostile snapshot directory) can cost in
memory and time; every reader of layers and manifests takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ManifestLimits"]


@dataclass(frozen=True)
class ManifestLimits:
    """Caps applied while building or parsing a manifest.

    Attributes:
        max_entries: entries in one layer (tar members or snapshot paths).
        max_path_bytes: UTF-8 bytes of one path or link target (Linux PATH_MAX).
        max_total_size: sum of regular-file sizes in one layer.
        max_manifest_bytes: size of a serialized manifest accepted by the parser.
        max_uncompressed_bytes: bytes of one uncompressed layer tar, headers,
            padding and end-of-archive blocks included; ``None`` derives it
            from ``max_total_size`` plus a header allowance per entry.
        max_expansion_ratio: uncompressed bytes per compressed byte read,
            checked once ``expansion_floor_bytes`` were decompressed;
            ``None`` turns the check off.
        expansion_floor_bytes: uncompressed bytes below which the ratio is
            not checked (small layers compress arbitrarily well).
        max_tar_header_bytes: body of one PAX or GNU long-name tar header,
            refused before it is read (Go's own cap is 1 MiB).
        max_total_path_bytes: UTF-8 bytes of all paths and link targets a
            layer tar names, so that the per-layer path table stays small.
    """

    max_entries: int = 1_000_000
    max_path_bytes: int = 4096
    max_total_size: int = 64 * 2**30
    max_manifest_bytes: int = 512 * 2**20
    max_uncompressed_bytes: int | None = None
    # Deflate cannot expand past 1032:1, so no gzip layer trips this; zstd
    # reaches 32,000:1 on zeros, which is how a 64 KiB blob became 2 GiB of work.
    max_expansion_ratio: int | None = 1100
    expansion_floor_bytes: int = 128 * 2**20
    max_tar_header_bytes: int = 64 * 2**10
    max_total_path_bytes: int = 128 * 2**20
