# SPDX-License-Identifier: Apache-2.0
"""The hand-built headers the reader accepts read the same in Go (umoci, containerd).

tests/unit/manifest/test_tar_reader.py states each reading from Go's sources;
this runs the same layers through ``umoci raw unpack`` (Go 1.19's
``archive/tar``, as containerd) and requires the server's manifest to equal
the unpacked tree, so a misreading of the Go sources shows up here. A
Hypothesis test then builds well-formed but tricky layers (PAX overrides, GNU
long names, NUL-led checksums, sized header-only entries, whiteouts, opaque
markers, hardlinks) over a lower layer with a symlink, and requires every
layer the server accepts to equal containerd's own snapshot of it.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.digests import Digest, chain_ids
from attestor.manifest import compare_manifests, manifest_from_snapshot, manifest_from_tar
from tests.harness.binaries import require, require_root
from tests.harness.services import Containerd, CtrError
from tests.integration.manifest._go_reading import (
    layout_of,
    server_reading,
    umoci_reading,
    without_overlay_markers,
)
from tests.integration.manifest.test_snapshot_equality import import_image, layer_dir
from tests.unit.manifest._rawtar import (
    END,
    base256,
    data,
    entry,
    gnu_long,
    header,
    pax,
    pax_record,
)

CAP = b"\x01\x00\x00\x02" + bytes(16)  # VFS_CAP_REVISION_2, no capabilities


def _after(first: bytes) -> bytes:
    return first + entry(b"next", b"n") + END


LAYERS: dict[str, bytes] = {
    **{
        f"checksum-{style}": entry(b"a", b"xyz", checksum=style) + END
        for style in ("octal", "go", "spaces")
    },
    "checksum-signed": entry("café".encode(), b"c", checksum="signed") + END,
    "base256-ids-mode": header(
        b"b", uid=base256(2**30, 8), gid=base256(70_000, 8), mode=base256(0o4755, 8)
    )
    + END,
    "ustar-prefix": header(b"inner", prefix=b"opt/deep") + END,
    "nul-type-slash-is-dir": header(b"d/", typeflag=b"\x00", size=512, mode=0o700)
    + header(b"d/hidden")
    + END,
    "nul-type-regular": header(b"f", typeflag=b"\x00", size=2) + data(b"hi") + END,
    "hardlink-with-size": entry(b"t", b"target")
    + _after(header(b"x", typeflag=b"1", size=512, link=b"t")),
    "symlink-with-size": _after(header(b"x", typeflag=b"2", size=512, link=b"t")),
    "chardev-with-size": _after(
        header(b"x", typeflag=b"3", size=512, devmajor=1, devminor=3, mode=0o666)
    ),
    "blockdev-with-size": _after(header(b"x", typeflag=b"4", size=512, devmajor=7, devminor=0)),
    "dir-with-size": _after(header(b"x", typeflag=b"5", size=512, mode=0o755)),
    "fifo-with-size": _after(header(b"x", typeflag=b"6", size=512, mode=0o600)),
    "pax-overrides": pax(
        pax_record(b"path", b"very/" + b"p" * 200)
        + pax_record(b"linkpath", b"t" * 150)
        + pax_record(b"uid", b"100000")
        + pax_record(b"gid", b"200000")
        + pax_record(b"mtime", b"1700000000.123456789")
        + pax_record(b"comment", b"ignored \x00 too")
    )
    + header(b"short", typeflag=b"2", link=b"l", uid=1, gid=2)
    + END,
    "pax-capability": pax(pax_record(b"SCHILY.xattr.security.capability", CAP))
    + entry(b"ping", b"p", mode=0o755)
    + END,
    "pax-size-hides-header": pax(pax_record(b"size", b"0"))
    + header(b"carrier", size=512)
    + entry(b"hidden", b"h")
    + END,
    "pax-duplicate": pax(pax_record(b"path", b"first") + pax_record(b"path", b"second"))
    + header(b"h")
    + END,
    "K-cut-at-nul": gnu_long(b"K", b"target\x00junk")
    + header(b"s", typeflag=b"2", link=b"x")
    + END,
    "no-end-marker": entry(b"a", b"1"),
    "one-zero-block": entry(b"a", b"1") + END[:512],
    "zero-padding": entry(b"a", b"1") + END + bytes(10_000),
}


#: Layers Go reads (umoci unpacks them) but CPython's tarfile reads otherwise:
#: refused, with the reason naming the ambiguity.
AMBIGUOUS: dict[str, tuple[bytes, str]] = {
    "checksum-nul-led": (
        entry(b"a", b"xyz", checksum="nul-led") + END,
        "ambiguous checksum field",
    ),
    "octal-padding": (
        header(b"p", size=b"\x00\x00\x0000000003\x00", uid=b"  1750 \x00", mode=b"0755\x00777")
        + data(b"abc")
        + END,
        "ambiguous size field",
    ),
    "gnu-atime-not-prefix": (
        header(b"g", magic=b"ustar ", version=b" \x00", raw={345: b"00000000017\x00"}) + END,
        "ambiguous GNU header: bytes where USTAR has its prefix",
    ),
    "pax-empty-values": (
        pax(pax_record(b"path", b"") + pax_record(b"uid", b"") + pax_record(b"size", b""))
        + entry(b"kept", b"abc", uid=1000)
        + END,
        "ambiguous: empty PAX path record",
    ),
    "pax-duplicate-erased": (
        pax(pax_record(b"path", b"first") + pax_record(b"path", b"")) + header(b"h") + END,
        "ambiguous: empty PAX path record",
    ),
    "pax-second-replaces": (
        pax(pax_record(b"path", b"one") + pax_record(b"uid", b"7"))
        + pax(pax_record(b"path", b"two"))
        + header(b"h")
        + END,
        "ambiguous: two PAX ('x') headers for one entry",
    ),
    "x-then-L": (
        pax(pax_record(b"path", b"from-pax")) + gnu_long(b"L", b"from-gnu") + header(b"h") + END,
        "ambiguous: a PAX path and a GNU long name for one entry",
    ),
    "L-then-x": (
        gnu_long(b"L", b"from-gnu") + pax(pax_record(b"path", b"from-pax")) + header(b"h") + END,
        "ambiguous: a PAX path and a GNU long name for one entry",
    ),
    "L-reset-by-empty": (
        gnu_long(b"L", b"first") + gnu_long(b"L", b"\x00") + header(b"h") + END,
        "ambiguous: two GNU long name ('L') headers for one entry",
    ),
    "L-slash-nul-type": (
        gnu_long(b"L", b"gd/") + header(b"gd", typeflag=b"\x00", size=512) + header(b"x") + END,
        "ambiguous: a NUL-typed entry is a directory for Go's archive/tar",
    ),
}


@pytest.fixture(scope="module")
def umoci() -> str:
    require_root()  # umoci keeps owners, devices and set-id bits only as root
    return require("umoci")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_accepted_hand_built_layer_reads_as_go_reads_it(
    name: str, umoci: str, tmp_path: Path
) -> None:
    layer = LAYERS[name]
    server = server_reading(layer)
    assert server.manifest is not None, server.refusal  # these are meant to be accepted
    go = umoci_reading(umoci, layer, tmp_path / "unpack")
    assert go.manifest is not None, go.error
    assert without_overlay_markers(server.manifest) == without_overlay_markers(go.manifest)


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_layers_go_and_cpython_read_differently_are_refused(
    name: str, umoci: str, tmp_path: Path
) -> None:
    layer, reason = AMBIGUOUS[name]
    assert umoci_reading(umoci, layer, tmp_path / "unpack").manifest is not None
    server = server_reading(layer)
    assert server.manifest is None and reason in (server.refusal or ""), server.refusal


# --- Hypothesis: tricky well-formed layers against containerd -----------------

BASE = (
    header(b"a/", typeflag=b"5", mode=0o700, uid=3)
    + entry(b"b", b"B")
    + header(b"c", typeflag=b"2", link=b"a")
    + END
)
NAMES = st.tuples(
    st.lists(st.sampled_from([b"a", b"b", b"c", b"."]), max_size=2),
    st.sampled_from([b"a", b"b", b"c", b".wh.a", b".wh.b", b".wh..wh..opq"]),
).map(lambda t: b"/".join([*t[0], t[1]]))
SUFFIX = st.sampled_from([b"", b"", b"/"])


@st.composite
def tricky_member(draw: st.DrawFn) -> bytes:
    """One entry, maybe behind PAX and GNU long-name headers."""
    kind = draw(st.sampled_from(b"00005521\x006"))
    content = draw(st.sampled_from([b"", b"x", b"hello" * 120]))
    meta = b""
    if draw(st.booleans()):
        choices = [
            (b"path", draw(NAMES)),
            (b"path", b""),
            (b"linkpath", draw(NAMES)),
            (b"uid", b"77"),
            (b"uid", b""),
            (b"gid", b"88"),
            (b"mtime", b"1.5"),
            (b"SCHILY.xattr.security.capability", CAP),
            (b"SCHILY.xattr.user.k", b"v"),
            (b"comment", b"c"),
        ]
        pairs = draw(st.lists(st.sampled_from(choices), max_size=3))
        meta += pax(b"".join(pax_record(k, v) for k, v in pairs))
    if draw(st.integers(0, 4)) == 0:
        meta += gnu_long(b"L", draw(NAMES) + draw(SUFFIX))
    if draw(st.integers(0, 6)) == 0:
        meta += gnu_long(b"K", draw(NAMES))
    regular = kind in b"0\x00"
    block = header(
        draw(NAMES) + draw(SUFFIX),
        typeflag=bytes([kind]),
        size=len(content) if regular else draw(st.sampled_from([0, 0, 512])),
        mode=draw(st.sampled_from([0o644, 0o755, 0o4755, 0o2755, 0o1777, 0o600])),
        uid=draw(st.sampled_from([0, 1, 1000])),
        gid=draw(st.sampled_from([0, 1, 1000])),
        link=draw(NAMES),
        checksum=draw(st.sampled_from(["octal", "go", "nul-led"])),
    )
    return meta + block + (data(content) if regular else b"")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=st.lists(tricky_member(), min_size=1, max_size=6))
def test_accepted_tricky_layers_equal_their_containerd_snapshots(
    containerd: Containerd, members: list[bytes]
) -> None:
    require_root()
    layer = b"".join(members) + END
    server = server_reading(layer, lower=[manifest_from_tar(io.BytesIO(BASE))])
    if server.manifest is None:
        return  # refusing is always allowed
    with tempfile.TemporaryDirectory(prefix="tar-reader-") as tmp:
        image = layout_of(Path(tmp) / "oci", [BASE, layer])
        try:
            import_image(containerd, image, Path(tmp), f"tar-reader/{uuid.uuid4().hex}")
        except CtrError as e:
            pytest.fail(f"accepted, but containerd does not unpack it: {e.stderr or e.stdout}")
        top = chain_ids([Digest(d) for d in image.diff_ids])[1]
        with layer_dir(containerd, top) as directory:
            on_disk = manifest_from_snapshot(directory)
    assert compare_manifests(server.manifest, on_disk) == []
    assert on_disk.canonical_bytes() == server.manifest.canonical_bytes()
