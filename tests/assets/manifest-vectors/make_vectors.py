# SPDX-License-Identifier: Apache-2.0
"""Regenerate the layer-manifest test vectors (docs/layer-manifest.md).

Run from the repository root: ``.venv/bin/python tests/assets/manifest-vectors/make_vectors.py``.
The tars are written byte-for-byte reproducibly (fixed mtimes, PAX format).
Only rerun on a deliberate format change: the unit test pins these bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from attestor.manifest import manifest_from_tar
from tests.unit.manifest._layers import T, cap_pax, tar_bytes

HERE = Path(__file__).parent
CAP = bytes.fromhex("0100000200040000000000000000000000000000")  # cap_net_bind_service, v2

VECTORS: dict[str, tuple[list[T], list[str]]] = {
    "01-empty": ([], []),
    "02-base": (
        [
            T("./", "dir", mode=0o755),
            T("bin/", "dir", mode=0o755),
            T("bin/busybox", data=b"busybox\n", mode=0o755),
            T("bin/sh", "symlink", link="busybox"),
            T("bin/ash", "hardlink", link="bin/busybox", mode=0o755),
            T("bin/su", data=b"su\n", mode=0o4755),
            T("bin/ping", data=b"ping\n", mode=0o755, pax=cap_pax(CAP)),
            T("tmp/", "dir", mode=0o1777),
            T("dev/null", "char", mode=0o666, dev=(1, 3)),
            T("run/fifo", "fifo", mode=0o600),
            T("etc/motd", data=b"old\n", mode=0o644),
            T("etc/motd", data=b"hello\n", mode=0o644, uid=1000, gid=1000),
            T("etc/x/", "dir", mode=0o2750, gid=42),
        ],
        [],
    ),
    "03-upper": (
        [
            T("etc/.wh.motd"),
            T("etc/x/.wh..wh..opq"),
            T("etc/x/new", data=b"new\n"),
            T("srv/a/b", data=b"b\n", mode=0o600),
        ],
        ["02-base"],
    ),
}


def main() -> None:
    index = []
    built = {}
    for name, (members, lower_names) in VECTORS.items():
        data = tar_bytes(members)
        lower = [built[n] for n in reversed(lower_names)]
        manifest = manifest_from_tar(io.BytesIO(data), lower=lower)
        built[name] = manifest
        (HERE / f"{name}.tar").write_bytes(data)
        (HERE / f"{name}.manifest.json").write_bytes(manifest.canonical_bytes())
        index.append(
            {
                "name": name,
                "tar": f"{name}.tar",
                "lower": lower_names,
                "diff_id": "sha256:" + hashlib.sha256(data).hexdigest(),
                "manifest": f"{name}.manifest.json",
                "sha256": manifest.sha256,
                "tree_digest": manifest.tree_digest,
            }
        )
    (HERE / "vectors.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
