# SPDX-License-Identifier: Apache-2.0
"""The standard sample image: every kind of layer entry the product must handle.

Layers, in order (paths are relative to the rootfs):

0. base (umoci): ``bin/busybox`` (busybox-static, 0755) with symlinks
   ``bin/sh`` and ``bin/sleep`` -> ``busybox``, ``etc/hostname``.
1. files (umoci): ``etc/app.conf`` 0644, ``srv/data/secret.key`` 0600,
   ``usr/local/bin/tool`` 0755, ``srv/a/b/c/deep.txt`` (nested dirs),
   ``etc/app.link`` -> ``app.conf`` (symlink), ``srv/data/orig.txt`` and
   ``srv/data/hard.txt`` as two names of one inode (umoci sorts names, so the
   tar holds ``hard.txt`` as the file and ``orig.txt`` as its ``h`` entry),
   ``usr/bin/suid-tool`` 4755 (setuid),
   ``usr/bin/cap-tool`` with a ``security.capability`` xattr,
   ``srv/data/gone.txt`` and ``srv/opq/{old,keep}.txt``.
2. changes (umoci): deletes ``srv/data/gone.txt`` (umoci writes the whiteout
   ``srv/data/.wh.gone.txt``), rewrites ``etc/app.conf``, adds ``srv/new.txt``.
3. opaque (raw tar): ``srv/opq/.wh..wh..opq`` plus ``srv/opq/fresh.txt``, so
   ``srv/opq`` only holds ``fresh.txt`` in the final rootfs.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from tests.harness.images import Changes, LayerSpec, RawLayer
from tests.harness.layers import Entry, opaque

__all__ = [
    "CAPABILITY_PATH",
    "CAPABILITY_XATTR",
    "DELETED_PATH",
    "HARDLINK_PATHS",
    "OPAQUE_DIR",
    "SETUID_PATH",
    "SYMLINK_PATH",
    "sample_layers",
]

SETUID_PATH = "usr/bin/suid-tool"
SYMLINK_PATH = "etc/app.link"
HARDLINK_PATHS = ("srv/data/orig.txt", "srv/data/hard.txt")
DELETED_PATH = "srv/data/gone.txt"
OPAQUE_DIR = "srv/opq"
CAPABILITY_PATH = "usr/bin/cap-tool"
# VFS_CAP_REVISION_2, effective, permitted = CAP_NET_BIND_SERVICE (10).
CAPABILITY_XATTR = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def sample_layers(busybox: str) -> list[LayerSpec]:
    """Return the four layer specs of the sample image; ``busybox`` is a static binary."""

    def base(root: Path) -> None:
        (root / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        os.chmod(root / "bin" / "busybox", 0o755)  # noqa: S103 - an image binary
        for applet in ("sh", "sleep"):
            os.symlink("busybox", root / "bin" / applet)
        _write(root / "etc" / "hostname", b"sample\n", 0o644)

    def files(root: Path) -> None:
        _write(root / "etc" / "app.conf", b"level=1\n", 0o644)
        _write(root / "srv" / "data" / "secret.key", b"not really secret\n", 0o600)
        _write(root / "usr" / "local" / "bin" / "tool", b"#!/bin/sh\necho tool\n", 0o755)
        _write(root / "srv" / "a" / "b" / "c" / "deep.txt", b"deep\n", 0o644)
        os.symlink("app.conf", root / SYMLINK_PATH)
        _write(root / HARDLINK_PATHS[0], b"linked content\n", 0o644)
        os.link(root / HARDLINK_PATHS[0], root / HARDLINK_PATHS[1])
        _write(root / SETUID_PATH, b"#!/bin/sh\nid\n", 0o4755)
        _write(root / CAPABILITY_PATH, b"#!/bin/sh\necho cap\n", 0o755)
        os.setxattr(root / CAPABILITY_PATH, "security.capability", CAPABILITY_XATTR)
        _write(root / DELETED_PATH, b"to be deleted\n", 0o644)
        _write(root / OPAQUE_DIR / "old.txt", b"hidden by opaque\n", 0o644)
        _write(root / OPAQUE_DIR / "keep.txt", b"also hidden\n", 0o644)

    def changes(root: Path) -> None:
        (root / DELETED_PATH).unlink()
        _write(root / "etc" / "app.conf", b"level=2\n", 0o644)
        _write(root / "srv" / "new.txt", b"added later\n", 0o640)

    return [
        Changes(base, "base: busybox"),
        Changes(files, "files, links, setuid, xattr"),
        Changes(changes, "delete, modify, add"),
        RawLayer(
            (
                Entry(OPAQUE_DIR, kind="dir", mode=0o755),
                opaque(OPAQUE_DIR),
                Entry(f"{OPAQUE_DIR}/fresh.txt", data=b"only file left\n"),
            ),
            "opaque dir",
        ),
    ]


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    # chmod after writing: the umask would drop bits, and setuid needs chmod.
    os.chmod(path, mode)
