# SPDX-License-Identifier: Apache-2.0
"""Tar building and a containerd-like overlayfs unpacker for manifest tests.

``unpack_like_containerd`` is an independent reading of containerd 1.6
``archive.Apply`` with ``OverlayConvertWhiteout`` and ``WithParents``: it
extracts a layer into its own directory the way the overlayfs snapshotter does
(whiteouts as 0/0 char devices, opaque dirs as trusted.overlay.opaque=y,
missing parents copied from lower layers or 0755 0:0). The real thing is
checked in tests/integration/manifest.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["T", "tar_bytes", "unpack_like_containerd"]


@dataclass(frozen=True)
class T:
    """One tar member. ``kind``: file dir symlink hardlink char block fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    dev: tuple[int, int] = (0, 0)
    pax: dict[str, str] = field(default_factory=dict)


_KINDS = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "contiguous": tarfile.CONTTYPE,
}


def cap_pax(value: bytes) -> dict[str, str]:
    """PAX record carrying a security.capability xattr value."""
    return {"SCHILY.xattr.security.capability": value.decode("utf-8", "surrogateescape")}


def tar_bytes(members: list[T], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A deterministic uncompressed tar of ``members``, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = _KINDS[m.kind]
            info.mode = m.mode
            info.uid, info.gid = m.uid, m.gid
            info.mtime = 1_700_000_000
            info.linkname = m.link
            info.devmajor, info.devminor = m.dev
            info.pax_headers = dict(m.pax)
            if m.kind in ("file", "contiguous"):
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _mkparent(root: Path, rel: str, lowers: list[Path]) -> None:
    if not rel:
        return
    path = root / rel
    if path.is_symlink() or path.exists():
        return
    _mkparent(root, rel.rpartition("/")[0], lowers)
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)  # noqa: S103 - containerd mkparent default
    for lower in lowers:
        below = lower / rel
        if below.is_symlink() or below.exists():
            st = os.lstat(below)
            if stat.S_ISDIR(st.st_mode):
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, stat.S_IMODE(st.st_mode))
                for name in os.listxattr(below):
                    if not name.startswith("trusted."):
                        os.setxattr(path, name, os.getxattr(below, name))
            break


def unpack_like_containerd(data: bytes, root: Path, lowers: list[Path] | None = None) -> None:
    """Extract a layer tar into ``root`` as containerd's overlayfs applier does."""
    lowers = lowers or []
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        for member in tar:
            rel = _clean(member.name)
            if not rel:
                continue
            parent, _, base = rel.rpartition("/")
            _mkparent(root, parent, lowers)
            path = root / rel
            if base == ".wh..wh..opq":
                os.setxattr(root / parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(".wh."):
                target = root / parent / base[4:]
                os.mknod(target, stat.S_IFCHR, 0)
                os.chown(target, member.uid, member.gid)
                continue
            if path.is_symlink() or path.exists():
                if not (path.is_dir() and not path.is_symlink() and member.isdir()):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
            if member.isreg():
                src = tar.extractfile(member)
                assert src is not None
                with open(path, "wb") as f:
                    shutil.copyfileobj(src, f)
            elif member.isdir():
                path.mkdir(exist_ok=True)
            elif member.issym():
                os.symlink(member.linkname, path)
            elif member.islnk():
                os.link(root / _clean(member.linkname), path)
            elif member.ischr() or member.isblk():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            elif member.isfifo():
                os.mkfifo(path)
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            for key, value in member.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    os.setxattr(
                        path,
                        key[len("SCHILY.xattr.") :],
                        value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False,
                    )
            if not member.issym() and not member.islnk():
                os.chmod(path, member.mode & 0o7777)
