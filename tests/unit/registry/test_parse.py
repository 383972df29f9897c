# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestor.digests import sha256_digest
from attestor.errors import InvalidInput, TooLarge, UpstreamError
from attestor.registry._parse import (
    loads_strict,
    manifest_media_type,
    parse_config,
    parse_image_manifest,
    select_platform,
)
from attestor.registry.auth import Credentials, parse_challenge
from attestor.registry.media_types import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from attestor.registry.models import RegistryLimits

D = sha256_digest(b"x")


def _manifest(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D, "size": 1}
        ],
    }
    doc.update(overrides)
    return doc


def test_real_oci_documents_parse(asset: Callable[[str], Path]) -> None:
    index = loads_strict(asset("fixtures/oci/image-index.json").read_bytes(), "index")
    assert manifest_media_type(index, None) == OCI_INDEX
    desc = select_platform(index, "linux/amd64")
    manifest_bytes = asset("fixtures/oci/image-manifest.json").read_bytes()
    assert desc.digest == sha256_digest(manifest_bytes)
    manifest = loads_strict(manifest_bytes, "manifest")
    config_desc, layers = parse_image_manifest(manifest, RegistryLimits())
    assert len(layers) == 12
    config = parse_config(asset("fixtures/oci/image-config.json").read_bytes(), len(layers))
    assert config.architecture == "amd64"
    assert len(config.diff_ids) == 12
    # The BuildKit attestation manifest in the same index is not an image.
    with pytest.raises(InvalidInput, match="no image for platform unknown/unknown"):
        select_platform(index, "unknown/unknown")
    attestation = loads_strict(
        asset("fixtures/oci/buildkit-attestation-manifest.json").read_bytes(), "m"
    )
    with pytest.raises(InvalidInput, match="not a container image"):
        parse_image_manifest(attestation, RegistryLimits())


@pytest.mark.parametrize(
    "data",
    [b'{"a": 1, "a": 2}', b"[1]", b"{", b'{"a": NaN}', b"\xff", b"[" * 100000],
)
def test_loads_strict_rejects(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        loads_strict(data, "doc")


def test_media_type_comes_from_the_document_first() -> None:
    assert manifest_media_type(_manifest(), "text/plain") == OCI_MANIFEST
    doc = _manifest()
    del doc["mediaType"]
    assert manifest_media_type(doc, f"{DOCKER_MANIFEST}; charset=utf-8") == DOCKER_MANIFEST
    with pytest.raises(InvalidInput):
        manifest_media_type(doc, None)
    with pytest.raises(InvalidInput, match="schemaVersion"):
        manifest_media_type(_manifest(schemaVersion=1), None)
    with pytest.raises(InvalidInput):
        manifest_media_type(
            _manifest(mediaType="application/vnd.docker.distribution.manifest.v1+prettyjws"), None
        )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"config": {"mediaType": "application/x", "digest": D, "size": 1}}, "config media type"),
        ({"artifactType": "application/x"}, "artifactType"),
        ({"layers": []}, "no layers"),
        ({"layers": [{"mediaType": "text/plain", "digest": D, "size": 1}]}, "media type"),
        (
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                        "digest": D,
                        "size": 1,
                    }
                ]
            },
            "non-distributable",
        ),
        (
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": D,
                        "size": 1,
                        "urls": ["https://x"],
                    }
                ]
            },
            "urls",
        ),
        (
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha512:aa",
                        "size": 1,
                    }
                ]
            },
            "digest",
        ),  # noqa: E501
        (
            {
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D, "size": -1}
                ]
            },
            "size",
        ),  # noqa: E501
        (
            {
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": D,
                        "size": True,
                    }
                ]
            },
            "size",
        ),  # noqa: E501
        ({"config": "x"}, "config"),
    ],
)
def test_image_manifest_rejects(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_image_manifest(_manifest(**overrides), RegistryLimits())


def test_layer_count_cap() -> None:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D, "size": 1}
    with pytest.raises(TooLarge):
        parse_image_manifest(_manifest(layers=[layer] * 3), RegistryLimits(max_layers=2))


def test_config_checks() -> None:
    good = {"rootfs": {"type": "layers", "diff_ids": [D]}, "os": "linux"}
    assert parse_config(json.dumps(good).encode(), 1).diff_ids == (D,)
    with pytest.raises(InvalidInput, match="1 diff_ids for 2 layers"):
        parse_config(json.dumps(good).encode(), 2)
    for bad in (
        {"rootfs": {"type": "other", "diff_ids": [D]}},
        {"rootfs": {"type": "layers", "diff_ids": ["md5:1"]}},
        {"rootfs": {"type": "layers", "diff_ids": [D]}, "history": [1]},
    ):
        with pytest.raises(InvalidInput):
            parse_config(json.dumps(bad).encode(), 1)


def test_select_platform_variants() -> None:
    def entry(arch: str, variant: str | None = None) -> dict[str, Any]:
        platform = {"os": "linux", "architecture": arch}
        if variant:
            platform["variant"] = variant
        return {
            "mediaType": OCI_MANIFEST,
            "digest": sha256_digest(arch.encode() + str(variant).encode()),
            "size": 1,
            "platform": platform,
        }  # noqa: E501

    index = {"manifests": [entry("arm", "v6"), entry("arm", "v7"), entry("amd64")]}
    assert select_platform(index, "linux/arm/v7").platform == {  # type: ignore[union-attr]
        "os": "linux",
        "architecture": "arm",
        "variant": "v7",
    }
    assert select_platform(index, "linux/arm").platform["variant"] == "v6"  # type: ignore[index]
    for bad in ("linux", "linux/", "a/b/c/d"):
        with pytest.raises(InvalidInput):
            select_platform(index, bad)


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="reg",'
        'scope="repository:a/b:pull,push"'
    )
    assert (c.scheme, c.realm, c.service, c.scope) == (
        "bearer",
        "https://auth.example.com/token",
        "reg",
        "repository:a/b:pull,push",
    )
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    with pytest.raises(UpstreamError):
        parse_challenge("Negotiate abc")
    assert "pw" not in repr(Credentials("u", "pw"))
