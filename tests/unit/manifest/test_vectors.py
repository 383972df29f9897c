# SPDX-License-Identifier: Apache-2.0
"""The test vectors published in docs/layer-manifest.md."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from attestor.manifest import (
    AttestedManifest,
    FileManifest,
    manifest_from_snapshot,
    manifest_from_tar,
)
from tests.harness.binaries import require_root
from tests.unit.manifest._layers import unpack_like_containerd

VECTORS = Path(__file__).parents[2] / "assets" / "manifest-vectors"
INDEX = json.loads((VECTORS / "vectors.json").read_text())


def _build(name: str) -> FileManifest:
    vector = next(v for v in INDEX if v["name"] == name)
    lower = [_build(n) for n in reversed(vector["lower"])]
    return manifest_from_tar(io.BytesIO((VECTORS / vector["tar"]).read_bytes()), lower=lower)


@pytest.mark.parametrize("vector", INDEX, ids=[v["name"] for v in INDEX])
def test_vector(vector: dict[str, object]) -> None:
    tar = (VECTORS / str(vector["tar"])).read_bytes()
    expected = (VECTORS / str(vector["manifest"])).read_bytes()
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == vector["diff_id"]
    manifest = _build(str(vector["name"]))
    assert manifest.canonical_bytes() == expected
    assert manifest.sha256 == vector["sha256"]
    assert manifest.tree_digest == vector["tree_digest"]
    assert FileManifest.from_canonical_bytes(expected) == manifest
    # The streaming parse computes the same digests as the whole-list model.
    compact = AttestedManifest.from_canonical_bytes(expected)
    assert (compact.sha256, compact.tree_digest) == (vector["sha256"], vector["tree_digest"])


def test_vectors_unpacked_like_containerd_give_the_same_bytes(tmp_path: Path) -> None:
    require_root("mknod and trusted.* xattrs")
    roots: dict[str, Path] = {}
    for vector in INDEX:
        root = tmp_path / str(vector["name"]) / "fs"
        lowers = [roots[n] for n in reversed(vector["lower"])]
        unpack_like_containerd((VECTORS / vector["tar"]).read_bytes(), root, lowers)
        roots[vector["name"]] = root
        assert manifest_from_snapshot(root).sha256 == vector["sha256"]


def test_vectors_validate_against_the_schema() -> None:
    import jsonschema

    schema = json.loads(
        (Path(__file__).parents[3] / "schemas" / "layer-manifest.schema.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema)
    for vector in INDEX:
        doc = json.loads((VECTORS / vector["manifest"]).read_bytes())
        assert list(validator.iter_errors(doc)) == []
    bad = {
        "mediaType": "application/vnd.attestor.layer-manifest.v1+json",
        "entries": [{"path": "../x", "type": "whiteout"}],
    }
    assert list(validator.iter_errors(bad))
    bad["entries"] = [{"path": "x", "type": "whiteout", "mode": "0755"}]
    assert list(validator.iter_errors(bad))
