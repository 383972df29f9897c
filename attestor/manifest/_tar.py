# SPDX-License-Identifier: Apache-2.0
"""Build a layer's file manifest from its uncompressed tar stream.

Headers are read by :mod:`attestor.manifest._tarreader` exactly as Go's
``archive/tar`` (containerd's reader) reads them, or refused. The entries are
replayed into a path table (:mod:`attestor.manifest._tarreplay`) the way
containerd's overlayfs applier extracts them (spec section "From a layer
tar"): later entries replace earlier ones,
missing parents appear as implicit directories, whiteouts and opaque markers
become what overlayfs stores. File contents are hashed in chunks and never
kept.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Sequence
from typing import BinaryIO

import zstandard

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._model import EntryType, FileManifest, check_path
from attestor.manifest._tarreader import TarHeader, TarReader
from attestor.manifest._tarreplay import OPAQUE, Inode, Node, Replay

__all__ = ["manifest_from_tar", "normalize_tar_path"]

_WHITEOUT = ".wh."
_CAPABILITY = b"security.capability"
_PAX_RECORDS_PER_ENTRY = 16


def normalize_tar_path(name: str, *, limits: ManifestLimits) -> str:
    """Normalize a tar member name to a manifest path; ``""`` is the root.

    Leading ``./`` and ``/``-runs, ``.`` components and trailing ``/`` go, as
    with Go's ``filepath.Clean``. ``..`` is rejected rather than cleaned: a
    layer has no business naming it.

    Raises:
        InvalidInput: on an absolute path, ``..``, NUL or non-UTF-8 bytes.
    """
    if name.startswith("/"):
        raise InvalidInput(f"absolute path in layer tar: {name[:200]!r}")
    if "\x00" in name:
        raise InvalidInput(f"NUL in tar member name: {name[:200]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"path traversal in layer tar: {name[:200]!r}")
    path = "/".join(parts)
    return check_path(path, limits=limits) if path else ""


def _capability(header: TarHeader) -> bytes | None:
    value = None
    for name, raw in header.xattrs.items():
        if name.startswith(b"trusted."):
            # trusted.overlay.* would forge overlayfs metadata (spec "Rejected").
            raise InvalidInput(f"trusted xattr {name[:100]!r} on {header.name[:200]!r}")
        if name.startswith(b"system."):
            # POSIX ACLs (system.posix_acl_*) grant access beyond the mode
            # bits, and the manifest does not record them.
            raise InvalidInput(f"system xattr {name[:100]!r} on {header.name[:200]!r}")
        if name == _CAPABILITY:
            if not raw:
                # containerd would set it empty, which the kernel refuses.
                raise InvalidInput(f"empty security.capability on {header.name[:200]!r}")
            value = raw
    return value


def _hash_data(reader: TarReader) -> str:
    digest = hashlib.sha256()
    while chunk := reader.read_data():
        digest.update(chunk)
    return digest.hexdigest()


def _apply(replay: Replay, reader: TarReader, header: TarHeader) -> None:
    limits = replay.limits
    path = normalize_tar_path(header.name, limits=limits)
    replay.count_path(path, header.linkname)
    directory, _, base = path.rpartition("/")
    if _WHITEOUT in directory and any(p.startswith(_WHITEOUT) for p in directory.split("/")):
        # A directory named like a whiteout: containerd creates it, other
        # unpackers (umoci) treat it as a whiteout; no real layer has one.
        raise InvalidInput(f"whiteout name used as a directory in {path!r}")
    if base.startswith(_WHITEOUT) and not replay.lower:
        # With no parent snapshot containerd applies the layer without
        # overlayfs conversion: it deletes whiteout targets and drops opaque
        # markers, so neither a whiteout nor an opaque directory is on disk.
        # A base layer has nothing to hide, so refuse rather than model it.
        raise InvalidInput(
            f"whiteout or opaque marker {path!r} in the bottom layer "
            "(a base layer has nothing below it to delete or hide)"
        )
    if base == OPAQUE:
        replay.set_opaque(directory)
        return
    if base.startswith(_WHITEOUT):
        name = base[len(_WHITEOUT) :]
        if not name or name.startswith(_WHITEOUT):
            raise InvalidInput(f"unsupported whiteout name {path!r}")
        target = f"{directory}/{name}" if directory else name
        if target in replay.nodes:
            # containerd's overlay applier mknods the whiteout where this
            # layer already put something, and fails with EEXIST.
            raise InvalidInput(f"whiteout {path!r} of a path this layer already created")
        replay.put(target, Node(EntryType.WHITEOUT))
        return
    if not path:
        return  # containerd ignores the root entry ("./")
    kind = header.typeflag
    mode, uid, gid = replay.mode(header.mode), header.uid, header.gid
    capability = _capability(header)
    if kind == "0":
        replay.total_size += header.size
        if replay.total_size > limits.max_total_size:
            raise TooLarge(f"layer content exceeds {limits.max_total_size} bytes")
        inode = Inode(mode, uid, gid, header.size, _hash_data(reader), capability)
        replay.put(path, inode)
    elif kind == "5":
        replay.put(path, Node(EntryType.DIR, mode=mode, uid=uid, gid=gid, capability=capability))
        replay.dir_headers.add(path)
    elif kind == "2":
        if not header.linkname:
            raise InvalidInput(f"bad symlink target at {path!r}")
        replay.put(path, Node(EntryType.SYMLINK, uid=uid, gid=gid, link=header.linkname))
    elif kind == "1":
        _apply_hardlink(replay, header, path, mode, capability)
    elif kind in ("3", "4"):
        if kind == "3" and header.devmajor == 0 and header.devminor == 0:
            raise InvalidInput(f"character device 0/0 at {path!r} is ambiguous with a whiteout")
        replay.put(
            path,
            Node(
                EntryType.CHARDEV if kind == "3" else EntryType.BLOCKDEV,
                mode=mode,
                uid=uid,
                gid=gid,
                capability=capability,
                devmajor=header.devmajor,
                devminor=header.devminor,
            ),
        )
    else:  # "6": TarReader returns no other type
        replay.put(path, Node(EntryType.FIFO, mode=mode, uid=uid, gid=gid, capability=capability))


def _apply_hardlink(
    replay: Replay, header: TarHeader, path: str, mode: int, capability: bytes | None
) -> None:
    target = normalize_tar_path(header.linkname, limits=replay.limits)
    inode = replay.nodes.get(target)
    if not isinstance(inode, Inode) or target == path:
        raise InvalidInput(f"hardlink {path!r} must name an earlier regular file, not {target!r}")
    # containerd lchowns the shared inode from the link's own header and sets
    # its xattrs; chmod follows only if os.Lstat(linkname) succeeds relative to
    # the daemon's working directory. So require the header to agree with the
    # inode, and refuse set-id inodes, whose bits the chown clears (spec
    # "Hardlinks").
    if (mode, header.uid, header.gid, capability) != (
        inode.mode,
        inode.uid,
        inode.gid,
        inode.capability,
    ):
        raise InvalidInput(f"hardlink {path!r} header attributes differ from {target!r}")
    if inode.mode & 0o4000 or (inode.mode & 0o2010) == 0o2010:
        raise InvalidInput(
            f"hardlink {path!r} to set-id file {target!r}: containerd's unpack is host-dependent"
        )
    replay.put(path, inode)


def manifest_from_tar(
    stream: BinaryIO,
    *,
    limits: ManifestLimits | None = None,
    lower: Sequence[FileManifest] = (),
) -> FileManifest:
    """Compute the file manifest of an uncompressed layer tar, in one pass.

    Headers are read as Go's ``archive/tar`` (containerd's unpack) reads them,
    and anything it could read differently is refused (see
    :mod:`attestor.manifest._tarreader`). The stream is read to its end (past
    the tar's end-of-archive blocks, which must be zeros) so that a hashing
    wrapper around it sees every byte, e.g. for the diffID.

    Args:
        stream: the uncompressed layer tar (see :func:`open_decompressed`).
        limits: caps on entries, path length, name bytes, header size and
            total content size.
        lower: the manifests of the layers below this one, topmost first.
            Only used for directories the tar does not list: containerd gives
            them the mode and owner of the same directory in a lower layer
            (spec "Implicit directories"). ``()`` means the bottom layer,
            whose whiteouts and opaque markers are refused: containerd
            applies a layer with no parent without overlayfs conversion.

    Raises:
        InvalidInput: on a malformed tar, a member the spec rejects, or a
            whiteout or opaque marker when ``lower`` is empty.
        TooLarge: when a cap in ``limits`` is exceeded.
    """
    limits = limits or ManifestLimits()
    replay = Replay(limits, lower)
    reader = TarReader(
        stream,
        max_meta_bytes=limits.max_tar_header_bytes,
        # Real layers carry a few records per entry (path, times, xattrs).
        max_pax_records=_PAX_RECORDS_PER_ENTRY * limits.max_entries,
    )
    try:
        while (header := reader.next()) is not None:
            replay.members += 1
            if replay.members > limits.max_entries:
                raise TooLarge(f"layer has more than {limits.max_entries} members")
            _apply(replay, reader, header)
        reader.finish()
        replay.check_dir_headers()
    except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as e:
        raise InvalidInput(f"malformed layer tar: {e}") from e
    return FileManifest.from_entries(replay.entries())
