# SPDX-License-Identifier: Apache-2.0
"""On real containerd: every corpus layer the server accepts unpacks to its manifest.

Each layer of ``tests/assets/tar-corpus/`` that ``manifest_from_tar`` accepts
is imported into containerd's overlayfs snapshotter as the second layer of an
image, over a small base layer: containerd unpacks a layer with parents
through its overlayfs applier (whiteouts become 0/0 devices, opaque markers
an xattr), the case the manifest format describes. The manifest of the
layer's own snapshot directory must equal the server's byte for byte. A
layer containerd refuses to unpack must be refused by the server too.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from attestor.digests import Digest, chain_ids
from attestor.manifest import compare_manifests, manifest_from_snapshot, manifest_from_tar
from tests.harness.binaries import require_root
from tests.harness.services import Containerd, CtrError
from tests.integration.manifest._go_reading import (
    CORPUS_DIR,
    corpus_generator,
    layout_of,
    server_reading,
)
from tests.integration.manifest.test_snapshot_equality import import_image, layer_dir

CASE_NAMES = sorted(json.loads((CORPUS_DIR / "corpus.json").read_text()))


def _base_layer() -> bytes:
    corpus = corpus_generator()
    return corpus.build(corpus.directory("base-layer"), corpus.file("base-layer/f", b"base\n"))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_accepted_corpus_layer_equals_its_containerd_snapshot(
    name: str, containerd: Containerd, asset: Any, tmp_path: Path
) -> None:
    require_root()
    base = _base_layer()
    layer = asset(f"tar-corpus/{name}.tar").read_bytes()
    server = server_reading(layer, lower=[manifest_from_tar(io.BytesIO(base))])
    if server.manifest is None:
        return  # refused: nothing is attested, whatever containerd would unpack
    image = layout_of(tmp_path / "oci", [base, layer])
    try:
        import_image(containerd, image, tmp_path, f"tar-corpus/{name}")
    except CtrError as e:
        last = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or [""]
        pytest.fail(
            f"{name}: the server accepted a layer containerd does not unpack: {last[0][-300:]}",
            pytrace=False,
        )
    top = chain_ids([Digest(d) for d in image.diff_ids])[1]
    with layer_dir(containerd, top) as directory:
        on_disk = manifest_from_snapshot(directory)
    changes = compare_manifests(server.manifest, on_disk)
    assert changes == [], f"{name}: server manifest vs containerd's snapshot: {changes}"
    assert on_disk.canonical_bytes() == server.manifest.canonical_bytes()
