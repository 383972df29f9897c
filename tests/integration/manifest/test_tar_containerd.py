# SPDX-License-Identifier: Apache-2.0
"""On real containerd: every corpus layer the server accepts unpacks to its manifest.

Each layer of ``tests/assets/tar-corpus/`` that ``manifest_from_tar`` accepts
is imported alone into containerd's overlayfs snapshotter; the manifest of
the snapshot directory must equal the server's byte for byte. containerd
keeps whiteouts as 0/0 devices and opaque directories as an xattr, so here
they are compared as they are (umoci, in the differential test, cannot).
A layer containerd refuses to unpack must be refused by the server too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attestor.manifest import compare_manifests, manifest_from_snapshot
from tests.harness.binaries import require_root
from tests.harness.services import Containerd, CtrError
from tests.integration.manifest._go_reading import CORPUS_DIR, layout_of, server_reading
from tests.integration.manifest.test_snapshot_equality import import_image, layer_dir

CASE_NAMES = sorted(json.loads((CORPUS_DIR / "corpus.json").read_text()))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_accepted_corpus_layer_equals_its_containerd_snapshot(
    name: str, containerd: Containerd, asset: Any, tmp_path: Path
) -> None:
    require_root()
    layer = asset(f"tar-corpus/{name}.tar").read_bytes()
    server = server_reading(layer)
    if server.manifest is None:
        return  # refused: nothing is attested, whatever containerd would unpack
    image = layout_of(tmp_path / "oci", [layer])
    try:
        import_image(containerd, image, tmp_path, f"tar-corpus/{name}")
    except CtrError as e:
        last = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or [""]
        pytest.fail(
            f"{name}: the server accepted a layer containerd does not unpack: {last[0][-300:]}",
            pytrace=False,
        )
    with layer_dir(containerd, image.diff_ids[0]) as directory:
        on_disk = manifest_from_snapshot(directory)
    changes = compare_manifests(server.manifest, on_disk)
    assert changes == [], f"{name}: server manifest vs containerd's snapshot: {changes}"
    assert on_disk.canonical_bytes() == server.manifest.canonical_bytes()
