# SPDX-License-Identifier: Apache-2.0
"""Differential test: the server reads every layer tar as Go's ``archive/tar`` does.

Each layer of ``tests/assets/tar-corpus/`` (and each Hypothesis mutation of a
few valid ones) is unpacked by ``umoci raw unpack`` (Go 1.19 ``archive/tar``,
the reader of Debian's containerd too) and read by ``manifest_from_tar``.
The server must either refuse the layer (``InvalidInput``/``TooLarge``) or
give exactly the manifest of the unpacked tree. Accepting a layer Go refuses
is a failure too, except where umoci is stricter than containerd
(``CONTAINERD_DECIDES``); ``test_tar_containerd.py`` checks every corpus
layer the server accepts against containerd itself.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.binaries import require, require_root
from tests.integration.manifest._go_reading import (
    CORPUS_DIR,
    GoReading,
    ServerReading,
    corpus_generator,
    server_reading,
    umoci_reading,
    whiteouts,
    without_overlay_markers,
)
from tests.integration.manifest._tar_strategies import NAMES, SEEDS, member, mutate, mutation

CASE_NAMES = sorted(json.loads((CORPUS_DIR / "corpus.json").read_text()))

#: umoci refusals where containerd unpacks the layer anyway, by the texts
#: umoci's error holds. The server may accept such a layer only with
#: containerd's reading, which test_tar_containerd.py checks for every corpus
#: layer. None of them is an archive/tar error ("read next entry").
CONTAINERD_DECIDES = {
    # umoci refuses any non-directory entry for the root; containerd's
    # applier skips every entry that resolves to the root.
    ("refusing to change type of root directory",): "containerd skips root entries",
    # umoci has no case for typeflag 'g'; containerd's createTarFile ignores
    # the header (after removing whatever its name points at).
    ("unknown typeflag '\\x67'",): "containerd ignores 'g' headers",
    # Linux refuses user.* xattrs on symlinks and devices; containerd skips
    # that EPERM, umoci fails on it.
    ("restore xattr metadata", "operation not permitted"): "containerd skips user.* EPERM",
}


corpus = corpus_generator()


def _describe(reading: ServerReading | GoReading) -> str:
    if reading.manifest is None:
        return str(getattr(reading, "refusal", None) or getattr(reading, "error", ""))
    return "\n    ".join(without_overlay_markers(reading.manifest)) or "(no entries)"


def assert_same_reading(name: str, layer: bytes, umoci: str, workdir: Path) -> None:
    """Refused by the server, or the same manifest as umoci's unpacked tree."""
    server = server_reading(layer)
    if server.manifest is None:
        return  # refusing is always allowed: the image is not attested
    go = umoci_reading(umoci, layer, workdir)
    if go.manifest is None:
        error = go.error or ""
        assert any(all(t in error for t in texts) for texts in CONTAINERD_DECIDES), (
            f"{name}: the server accepted a layer Go's archive/tar refuses\n"
            f"  go:     {go.error}\n  server: {_describe(server)}"
        )
        return
    hidden = whiteouts(server.manifest)
    server_lines = without_overlay_markers(server.manifest, hidden)
    go_lines = without_overlay_markers(go.manifest, hidden)
    assert server_lines == go_lines, (
        f"{name}: the server's manifest differs from Go's unpacked tree\n"
        f"  go:\n    {_describe(go)}\n  server:\n    {_describe(server)}"
    )


@pytest.fixture(scope="module")
def umoci() -> str:
    require_root()  # umoci keeps owners and set-id bits only as root
    return require("umoci")


def test_corpus_is_what_the_generator_writes() -> None:
    assert corpus.main(["--check"]) == 0, "run tests/assets/tar-corpus/make_corpus.py"
    assert sorted(c.name for c in corpus.CASES) == CASE_NAMES


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_layer_reads_as_go_reads_it(
    name: str, umoci: str, asset: Any, tmp_path: Path
) -> None:
    layer = asset(f"tar-corpus/{name}.tar").read_bytes()
    assert_same_reading(name, layer, umoci, tmp_path / "unpack")


def test_go_unpacks_the_files_hidden_behind_a_nul_led_checksum(
    umoci: str, asset: Any, tmp_path: Path
) -> None:
    # The corpus layer really is the attack: Go (so containerd) unpacks both
    # files that sit after the NUL-led checksum; the server must not attest
    # the layer without them.
    layer = asset("tar-corpus/backdoor-nul-checksum.tar").read_bytes()
    go = umoci_reading(umoci, layer, tmp_path / "unpack")
    assert go.manifest is not None, go.error
    backdoor = go.manifest.get("usr/bin/backdoor")
    preload = go.manifest.get("etc/ld.so.preload")
    assert backdoor is not None and backdoor.mode == 0o4755 and backdoor.uid == 0
    assert preload is not None and preload.size == len(corpus.PRELOAD)
    server = server_reading(layer)
    if server.manifest is not None:
        assert server.manifest.get("usr/bin/backdoor") == backdoor
        assert server.manifest.get("etc/ld.so.preload") == preload


# --- Hypothesis: mutated headers of valid layers ---------------------------------


def _keep(layer: bytes) -> str:
    """Save a failing generated layer and name it (it is too long to print)."""
    directory = Path(tempfile.gettempdir()) / "tar-differential"
    directory.mkdir(exist_ok=True)
    path = directory / f"{hashlib.sha256(layer).hexdigest()[:16]}.tar"
    path.write_bytes(layer)
    return f"layer {path}"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(SEEDS),
    mutations=st.lists(mutation, min_size=1, max_size=3),
    recompute=st.booleans(),
)
def test_mutated_headers_read_as_go_reads_them(
    umoci: str, seed: str, mutations: list[tuple[int, int, int]], recompute: bool
) -> None:
    layer = mutate((CORPUS_DIR / f"{seed}.tar").read_bytes(), mutations, recompute)
    with tempfile.TemporaryDirectory(prefix="tar-diff-") as tmp:
        try:
            assert_same_reading(
                f"{seed} mutated {mutations} recompute={recompute}",
                layer,
                umoci,
                Path(tmp) / "unpack",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_keep(layer)}") from None


# --- Hypothesis: layers generated from the tricky parts -------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=st.lists(member(NAMES), min_size=1, max_size=4))
def test_generated_layers_read_as_go_reads_them(umoci: str, members: list[bytes]) -> None:
    layer = corpus.build(corpus.file("hi", b"hi\n"), *members)
    with tempfile.TemporaryDirectory(prefix="tar-diff-") as tmp:
        try:
            assert_same_reading("generated layer", layer, umoci, Path(tmp) / "unpack")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_keep(layer)}") from None
