# SPDX-License-Identifier: Apache-2.0
"""Build a layer tar from an explicit list of entries, for cases umoci cannot write.

umoci computes layers from rootfs edits and never writes an opaque-directory
marker; tests that need exact tar entries (opaque dirs, odd modes, xattrs,
ordering) describe them here and add the tar verbatim.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Entry", "layer_tar", "opaque", "whiteout"]

Kind = Literal["file", "dir", "symlink", "hardlink"]

_TYPES: dict[str, bytes] = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class Entry:
    """One tar entry. ``target`` is the symlink target or the hardlink's source path."""

    path: str
    kind: Kind = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    xattrs: tuple[tuple[str, bytes], ...] = ()


def whiteout(path: str) -> Entry:
    """Return the OCI whiteout entry that deletes ``path`` from lower layers."""
    parent, name = posixpath.split(path.strip("/"))
    return Entry(posixpath.join(parent, f".wh.{name}"), mode=0o600)


def opaque(directory: str) -> Entry:
    """Return the OCI marker that hides everything lower layers put in ``directory``."""
    return Entry(posixpath.join(directory.strip("/"), ".wh..wh..opq"), mode=0o600)


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """Return an uncompressed PAX tar of ``entries``, in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path.strip("/") + ("/" if e.kind == "dir" else ""))
            info.type = _TYPES[e.kind]
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
            if e.kind in {"symlink", "hardlink"}:
                info.linkname = e.target.lstrip("/") if e.kind == "hardlink" else e.target
            if e.xattrs:
                # Raw bytes must survive: tarfile writes PAX values as UTF-8 with
                # surrogateescape, which round-trips arbitrary bytes.
                info.pax_headers = {
                    f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in e.xattrs
                }
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()
