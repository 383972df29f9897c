# SPDX-License-Identifier: Apache-2.0
"""On real containerd: every corpus layer the server accepts unpacks to its manifest.

Each layer of ``tests/assets/tar-corpus/`` that ``manifest_from_tar`` accepts
is imported into containerd's overlayfs snapshotter as the second layer of an
image, over a small base layer: containerd unpacks a layer with parents
through its overlayfs applier (whiteouts become 0/0 devices, opaque markers
an xattr), the case the manifest format describes. The manifest of the
layer's own snapshot directory must equal the server's byte for byte. A
layer containerd refuses to unpack must be refused by the server too.
Each accepted layer is also imported alone, as a bottom layer, which
containerd applies without overlayfs conversion.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.digests import Digest, chain_ids
from attestor.errors import InvalidInput
from attestor.manifest import (
    EntryType,
    compare_manifests,
    manifest_from_snapshot,
    manifest_from_tar,
)
from tests.harness.binaries import require_root
from tests.harness.images import BuiltImage
from tests.harness.services import Containerd, CtrError
from tests.integration.manifest._go_reading import (
    CORPUS_DIR,
    corpus_generator,
    layout_of,
    server_reading,
)
from tests.integration.manifest._tar_strategies import OVERLAY_NAMES, member
from tests.integration.manifest.test_snapshot_equality import import_image, layer_dir

CASE_NAMES = sorted(json.loads((CORPUS_DIR / "corpus.json").read_text()))


#: containerd failures after archive/tar read the whole layer, while applying
#: it. The server may accept such a layer: no node can unpack it, so nothing
#: runs under its attestation. Anything else containerd refuses (an
#: archive/tar error, a whiteout it cannot create, ...) the server must refuse.
HARMLESS_APPLY_FAILURES = (
    # containerd sets the times of every directory entry after the last entry,
    # resolving its path again; a later entry that made the path (or a parent)
    # a dangling or looping symlink fails that pass.
    "failed call to UtimesNanoAt",
    "too many links",
)


def import_or_explain(
    containerd: Containerd, image: BuiltImage, tmp: Path, name: str, label: str = ""
) -> bool:
    """Import ``image`` as ``name``; False if containerd fails applying it harmlessly.

    Raises:
        AssertionError: when containerd refuses the layer otherwise.
    """
    try:
        import_image(containerd, image, tmp, name)
    except CtrError as e:
        last = ((e.stderr or e.stdout or "").strip().splitlines()[-1:] or [""])[0]
        if any(text in last for text in HARMLESS_APPLY_FAILURES):
            return False
        raise AssertionError(
            f"{label or name}: the server accepted a layer containerd does not unpack: "
            f"{last[-300:]}"
        ) from None
    return True


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
    if not import_or_explain(containerd, image, tmp_path, f"tar-corpus/{name}"):
        return
    top = chain_ids([Digest(d) for d in image.diff_ids])[1]
    with layer_dir(containerd, top) as directory:
        on_disk = manifest_from_snapshot(directory)
    changes = compare_manifests(server.manifest, on_disk)
    assert changes == [], f"{name}: server manifest vs containerd's snapshot: {changes}"
    assert on_disk.canonical_bytes() == server.manifest.canonical_bytes()


@pytest.mark.parametrize("name", CASE_NAMES)
def test_accepted_corpus_layer_alone_equals_its_containerd_snapshot(
    name: str, containerd: Containerd, asset: Any, tmp_path: Path
) -> None:
    # As an image's only layer: containerd then applies it with no parent,
    # without overlayfs conversion (whiteout targets deleted, opaque markers
    # dropped), so the bottom layer must be judged on its own terms.
    require_root()
    layer = asset(f"tar-corpus/{name}.tar").read_bytes()
    server = server_reading(layer)
    if server.manifest is None:
        return
    image = layout_of(tmp_path / "oci", [layer])
    if not import_or_explain(containerd, image, tmp_path, f"tar-corpus-alone/{name}"):
        return
    with layer_dir(containerd, image.diff_ids[0]) as directory:
        on_disk = manifest_from_snapshot(directory)
    changes = compare_manifests(server.manifest, on_disk)
    assert changes == [], f"{name} alone: server manifest vs containerd's snapshot: {changes}"
    assert on_disk.canonical_bytes() == server.manifest.canonical_bytes()


@pytest.mark.parametrize(
    ("name", "path", "on_disk_type"),
    [("whiteout-pax-name", "victim", None), ("opaque-after-file", "od", EntryType.DIR)],
)
def test_bottom_layer_whiteouts_are_refused_as_containerd_drops_them(
    name: str, path: str, on_disk_type: EntryType | None, containerd: Containerd, asset: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    require_root()
    layer = asset(f"tar-corpus/{name}.tar").read_bytes()
    image = layout_of(tmp_path / "oci", [layer])
    import_image(containerd, image, tmp_path, f"tar-bottom/{name}")
    with layer_dir(containerd, image.diff_ids[0]) as directory:
        entry = manifest_from_snapshot(directory).get(path)
    # No whiteout device, no opaque xattr: what an overlay reading would list.
    assert (entry.type if entry else None) is on_disk_type
    refusal = server_reading(layer).refusal or ""
    assert "in the bottom layer (a base layer has nothing below it" in refusal, refusal
    # Over a parent the same layer is accepted with its overlay markers.
    above = server_reading(layer, lower=[manifest_from_tar(io.BytesIO(_base_layer()))])
    assert above.manifest is not None, above.refusal


# --- Hypothesis: generated layers over generated lower layers ------------------


@st.composite
def lower_layer(draw: st.DrawFn) -> bytes:
    """A small lower layer: directories with odd modes and owners, files, a symlink."""
    corpus = corpus_generator()
    parts = [
        corpus.directory("d", mode=0o700),
        corpus.directory("d", mode=0o2750, uid=5),
        corpus.file("a", b"A\n"),
        corpus.file("d/e", b"E\n"),
        corpus.header("x", typeflag=b"2", linkname="d"),
        corpus.directory("x/y", mode=0o711),
        corpus.file("hi", b"lower\n", mode=0o4755),
    ]
    return bytes(corpus.build(*draw(st.lists(st.sampled_from(parts), max_size=4))))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lower=lower_layer(), members=st.lists(member(OVERLAY_NAMES), min_size=1, max_size=4))
def test_generated_layers_equal_their_containerd_snapshots(
    containerd: Containerd, lower: bytes, members: list[bytes]
) -> None:
    require_root()
    corpus = corpus_generator()
    try:
        lower_manifest = manifest_from_tar(io.BytesIO(lower))
    except InvalidInput:
        return  # e.g. a file under the symlink: the lower layer itself is refused
    layer = corpus.build(*members)
    server = server_reading(layer, lower=[lower_manifest])
    if server.manifest is None:
        return
    with tempfile.TemporaryDirectory(prefix="tar-ctrd-") as tmp:
        image = layout_of(Path(tmp) / "oci", [lower, layer])
        name = f"tar-generated/{image.diff_ids[1][7:19]}"
        label = f"{name} (lower {lower!r}, layer {layer!r})"
        if not import_or_explain(containerd, image, Path(tmp), name, label):
            return
    chains = chain_ids([Digest(d) for d in image.diff_ids])
    for index, expected in ((0, lower_manifest), (1, server.manifest)):
        with layer_dir(containerd, chains[index]) as directory:
            on_disk = manifest_from_snapshot(directory)
        assert compare_manifests(expected, on_disk) == [], (
            f"layer {index}: lower {lower!r}\nlayer {layer!r}"
        )
