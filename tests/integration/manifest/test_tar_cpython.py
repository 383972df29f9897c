# SPDX-License-Identifier: Apache-2.0
"""Differential test: a layer the server accepts reads the same in CPython's ``tarfile``.

The server reads layers as Go's ``archive/tar`` does (containerd's reader);
the other Go-equality tests check that. Python-based consumers of the same
layer (image scanners built on ``tarfile``) must see the same entries, or a
layer could show them less than containerd unpacks (a NUL-led checksum ends
the archive for ``tarfile``). So for every corpus layer and for generated
and mutated ones: if our reader accepts the layer, ``tarfile`` yields the
same entry stream (name, type, size, mode, owner, link name, device numbers,
``SCHILY.xattr`` records, content digest), entry for entry.

``tarfile`` runs here only, never in server or agent code, and only on
layers our reader accepted with the server's limits: every PAX header is at
most ``max_tar_header_bytes`` (64 KiB), so ``tarfile``'s PAX parsing cannot
go quadratic (CVE-2024-6232).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest import ManifestLimits, manifest_from_tar
from attestor.manifest._tarreader import TarReader
from tests.harness.binaries import require
from tests.integration.manifest._go_reading import CORPUS_DIR, corpus_generator
from tests.integration.manifest._tar_strategies import (
    OVERLAY_NAMES,
    SEEDS,
    member,
    mutate,
    mutation,
)

CASE_NAMES = sorted(json.loads((CORPUS_DIR / "corpus.json").read_text()))
_XATTR = "SCHILY.xattr."
_HEADER_ONLY = frozenset("123456")

corpus = corpus_generator()

#: One entry as both readers must report it.
Entry = tuple[str, str, int, int, int, int, str, int, int, tuple[tuple[bytes, bytes], ...], str]


def _entry(
    name: str,
    kind: str,
    size: int,
    mode: int,
    uid: int,
    gid: int,
    link: str,
    dev: tuple[int, int],
    xattrs: dict[bytes, bytes],
    content: bytes,
) -> Entry:
    # tarfile strips a directory's trailing "/" (Go keeps it); containerd
    # cleans names anyway. Sizes and contents only count for regular files,
    # device numbers only for devices.
    regular = kind == "0"
    return (
        name.rstrip("/"),
        kind,
        size if regular else 0,
        mode,
        uid,
        gid,
        link,
        dev[0] if kind in "34" else 0,
        dev[1] if kind in "34" else 0,
        tuple(sorted(xattrs.items())),
        hashlib.sha256(content).hexdigest() if regular else "",
    )


def ours(layer: bytes) -> list[Entry] | None:
    """The entries our reader returns with the server's limits; None if refused."""
    limits = ManifestLimits()
    reader = TarReader(io.BytesIO(layer), max_meta_bytes=limits.max_tar_header_bytes)
    out = []
    try:
        while (h := reader.next()) is not None:
            content = b"".join(iter(reader.read_data, b""))
            dev = (h.devmajor, h.devminor)
            out.append(
                _entry(h.name, h.typeflag, h.size, h.mode, h.uid, h.gid, h.linkname, dev,
                       dict(h.xattrs), content)
            )  # fmt: skip
        reader.finish()
    except (InvalidInput, TooLarge):
        return None
    return out


def _raw(text: str) -> bytes:
    # tarfile decodes PAX keys and values as UTF-8 with surrogateescape.
    return text.encode("utf-8", "surrogateescape")


def cpython(layer: bytes) -> list[Entry] | str:
    """The entries CPython's ``tarfile`` yields, or its error."""
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as archive:
            for info in archive:
                kind = (
                    "0" if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else info.type.decode()
                )
                handle = archive.extractfile(info) if kind == "0" else None
                content = handle.read() if handle is not None else b""
                xattrs = {
                    _raw(k[len(_XATTR) :]): _raw(v)
                    for k, v in info.pax_headers.items()
                    if k.startswith(_XATTR)
                }
                dev = (info.devmajor, info.devminor)
                out.append(
                    _entry(info.name, kind, info.size, info.mode, info.uid, info.gid,
                           info.linkname, dev, xattrs, content)
                )  # fmt: skip
    except tarfile.ReadError as e:
        if str(e) == "empty file" and not layer:
            return []
        return f"tarfile.ReadError: {e}"
    return out


def assert_same_entries(label: str, layer: bytes) -> None:
    """Refused by our reader, or the same entry stream in CPython's tarfile."""
    mine = ours(layer)
    if mine is None:
        return
    theirs = cpython(layer)
    assert theirs == mine, (
        f"{label}: accepted, but CPython's tarfile reads it otherwise\n"
        f"  ours:    {mine}\n  tarfile: {theirs}"
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_accepted_corpus_layer_reads_the_same_in_cpython(name: str, asset: Any) -> None:
    assert_same_entries(name, asset(f"tar-corpus/{name}.tar").read_bytes())


def test_legitimate_writers_are_accepted_and_read_alike(asset: Any) -> None:
    # GNU tar, Go's writer (checksum "%06o\0 "/"%07o\0", PAX long names),
    # CPython-written PAX/GNU/ustar tars: accepted, and read the same.
    cases = [
        "chksum-gnu",
        "chksum-nul-terminated",
        "pax-path",
        "pax-linkpath",
        "gnu-longname",
        "pax-size",
    ]
    for name in cases:
        layer = asset(f"tar-corpus/{name}.tar").read_bytes()
        assert ours(layer), name
        assert_same_entries(name, layer)
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
            for path, data in (("e" * 60 + "/" + "n" * 90, b"x"), ("bin/sh", b"\x7fELF")):
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.uid = len(data), 0o4755, 1000
                archive.addfile(info, io.BytesIO(data))
        assert ours(buffer.getvalue()), fmt
        assert_same_entries(f"tarfile format {fmt}", buffer.getvalue())


def test_the_nul_led_checksum_backdoor_is_refused(asset: Any) -> None:
    # tarfile ends the archive at the bad header; Go reads on to a setuid
    # file and an ld.so.preload. One of the two readings would be hidden.
    layer = asset("tar-corpus/backdoor-nul-checksum.tar").read_bytes()
    theirs = cpython(layer)
    assert isinstance(theirs, list)
    assert [e[0] for e in theirs] == ["usr", "usr/bin", "usr/bin/hello"]
    assert ours(layer) is None


_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@_SETTINGS
@given(members=st.lists(member(OVERLAY_NAMES), min_size=1, max_size=4))
def test_generated_layers_read_the_same_in_cpython(members: list[bytes]) -> None:
    layer = corpus.build(corpus.file("hi", b"hi\n"), *members)
    assert_same_entries(f"generated layer {layer!r}", layer)


@_SETTINGS
@given(
    seed=st.sampled_from(SEEDS),
    mutations=st.lists(mutation, min_size=1, max_size=3),
    recompute=st.booleans(),
)
def test_mutated_layers_read_the_same_in_cpython(
    seed: str, mutations: list[tuple[int, int, int]], recompute: bool
) -> None:
    layer = mutate((CORPUS_DIR / f"{seed}.tar").read_bytes(), mutations, recompute)
    assert_same_entries(f"{seed} mutated {mutations} recompute={recompute}", layer)


def _tree(root: Path) -> None:
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / ("f" * 90)).write_bytes(b"long\n")
    tool = root / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_bytes(b"\x7fELF tool")
    tool.chmod(0o4755)
    (root / "bin" / "plain").write_bytes(b"plain\n")
    os.link(root / "bin" / "plain", root / "bin" / "plain-link")
    (root / "bin" / "sym").symlink_to("../" + "t" * 120)


@pytest.mark.parametrize(
    "command",
    [
        ("tar", "--format=gnu"),
        ("tar", "--format=posix"),
        ("tar", "--format=ustar"),
        ("busybox", "tar"),
    ],
    ids=["gnu-tar-gnu", "gnu-tar-posix", "gnu-tar-ustar", "busybox"],
)
def test_real_tar_writers_are_accepted_and_read_alike(
    command: tuple[str, str], tmp_path: Path
) -> None:
    # GNU tar and busybox as layer writers (long names, a setuid file, a
    # hardlink, a long symlink target). Go's writer is what builds the
    # sample image (umoci), which the issuance tests attest.
    root = tmp_path / "root"
    root.mkdir()
    _tree(root)
    out = tmp_path / "layer.tar"
    binary, *flags = command
    argv = [require(binary), *flags]
    if binary == "busybox":
        argv += ["-c", "-f", str(out), "-C", str(root), "."]
    else:
        if "--format=ustar" in flags:  # ustar cannot hold the 123-byte link target
            (root / "bin" / "sym").unlink()
        argv += ["--sort=name", "-c", "-f", str(out), "-C", str(root), "."]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    layer = out.read_bytes()
    assert ours(layer), command
    assert_same_entries(" ".join(command), layer)
    manifest = manifest_from_tar(io.BytesIO(layer))
    assert manifest.get(f"{'d' * 60}/{'e' * 60}/{'f' * 90}") is not None
    assert manifest.get("bin/tool").mode == 0o4755  # type: ignore[union-attr]
