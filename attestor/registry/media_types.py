# SPDX-License-Identifier: Apache-2.0
"""OCI and Docker media types the registry client accepts.

Non-distributable ("foreign") layers are **rejected**: their blobs may live at
URLs outside the registry (descriptor ``urls``), which we would have to fetch
from hosts no policy admitted. The OCI image-spec deprecates them anyway.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ACCEPT_MANIFESTS",
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "FOREIGN_LAYER_MEDIA_TYPES",
    "IMAGE_CONFIG_MEDIA_TYPES",
    "IMAGE_MANIFEST_MEDIA_TYPES",
    "INDEX_MEDIA_TYPES",
    "LAYER_MEDIA_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Compression",
    "layer_compression",
]

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"

Compression = Literal["none", "gzip", "zstd"]

#: Every layer media type we attest, with its compression.
LAYER_MEDIA_TYPES: Final[dict[str, Compression]] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
}

#: Layer media types that are recognised and refused (see module docstring).
FOREIGN_LAYER_MEDIA_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)

IMAGE_MANIFEST_MEDIA_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_MEDIA_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_CONFIG_MEDIA_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: ``Accept`` header for manifest requests: images and indexes, OCI and Docker v2.
ACCEPT_MANIFESTS: Final = ", ".join(
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]
)


def layer_compression(media_type: str) -> Compression | None:
    """The compression of a layer media type, or None if it is not a layer we accept."""
    return LAYER_MEDIA_TYPES.get(media_type)
