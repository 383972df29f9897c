# SPDX-License-Identifier: Apache-2.0
"""The agent's layer sweep: a snapshot directory compared with its attested manifest.

:func:`compare_snapshot` walks the directory as :func:`scan_snapshot` does and
compares each entry with its attested record as the walk yields it, so no
observed manifest is built. Regular files, nearly every entry of a layer,
build no :class:`ManifestEntry` either: their packed record is compared with
the attested one byte for byte, so a full re-hash runs near hashlib's speed.

The state kept between sweeps (:class:`LayerState`) is indexed like the
attested manifest: 44 bytes of lstat key and one flag byte per file, and a
digest only for a file that differs from its attested record, since a file
that matched has the attested digest. This keeps the agent under its 80 MB
resident-memory target with a 50,000-file layer.
"""

from __future__ import annotations

import os
import stat
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

from attestor.manifest._compact import (
    AttestedManifest,
    compact_unhashed,
    file_digest_of,
    pack_entry,
    pack_file,
    unpack_entry,
)
from attestor.manifest._compare import Change, diff_entries
from attestor.manifest._filekey import FILE_KEY
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry
from attestor.manifest._snapshot import SnapshotWalk, run_walk
from attestor.manifest._unscannable import Unscannable

__all__ = ["LayerState", "SnapshotCheck", "compare_snapshot"]

# The change key (FILE_KEY: ino, size, mtime_ns, ctime_ns), then mode, uid and
# gid: a file whose key is unchanged and whose record matched last time is
# passed without comparing its record again, so the record's own attributes
# are in the key too, not left to ctime alone. The full re-hash every N sweeps
# covers a forged ctime.
_KEY = struct.Struct(FILE_KEY.format + "III")
_K = _KEY.size
_pack_key = _KEY.pack
# LayerState.flags, one byte per attested entry:
_UNSEEN = 0  # not met by the walk: removed when the walk ends
_MATCH = 1  # regular file whose record equalled the attested one
_DIFFERS = 2  # regular file whose digest + capability are in ``other``
_SEEN = 3  # any other entry
_entry = ManifestEntry._trusted


def _key(st: os.stat_result) -> bytes:
    return _pack_key(
        st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode & 0o7777, st.st_uid,
        st.st_gid,
    )  # fmt: skip


_COUNT = struct.Struct("<I")


def _pack_names(known: dict[str, int]) -> bytes:
    """``known`` (name -> attested index) as count, indices, then the NUL-joined UTF-8 names."""
    head = _COUNT.pack(len(known)) + array("I", known.values()).tobytes()
    return head + "\0".join(known).encode("utf-8")


def _unpack_names(packed: bytes) -> dict[str, int]:
    """The dict :func:`_pack_names` packed."""
    (count,) = _COUNT.unpack_from(packed)
    end = _COUNT.size + 4 * count
    indices = array("I")
    indices.frombytes(packed[_COUNT.size : end])
    return dict(zip(packed[end:].decode("utf-8").split("\0"), indices, strict=True))


class LayerState:
    """What one sweep saw of a layer's regular files, for the next sweep.

    Args:
        manifest: the attested manifest the state is indexed by.
    """

    __slots__ = ("extra", "flags", "keys", "manifest", "names", "other")

    def __init__(self, manifest: AttestedManifest, previous: LayerState | None = None) -> None:
        count = len(manifest)
        self.manifest = manifest
        #: The lstat key of each attested regular file (``_K`` bytes per entry).
        #: Starts as the previous state's: a key is read only where this
        #: state's flag says the file was seen with it.
        self.keys: bytearray = (
            bytearray(count * _K) if previous is None else bytearray(previous.keys)
        )
        #: One flag per attested entry (``_UNSEEN`` ... ``_SEEN``).
        self.flags = bytearray(count)
        #: Attested index -> digest + capability of a file that is not as attested.
        self.other: dict[int, bytes] = {}
        #: Path -> key + digest + capability of a file the manifest does not list.
        self.extra: dict[str, bytes] = {}
        #: Directory path + "/" ("" for the root) -> the names of its regular
        #: files the manifest lists, with their indices (:func:`_pack_names`):
        #: what ``find`` answered for them, so that the next sweep looks a
        #: name up in a dict built for its directory instead of bisecting.
        self.names: dict[str, bytes] = {} if previous is None else dict(previous.names)

    def fits(self, manifest: AttestedManifest) -> bool:
        """True when the state is indexed like ``manifest`` (same entries, same order)."""
        if self.manifest is manifest:
            return True
        return bool(manifest.sha256) and manifest.sha256 == self.manifest.sha256

    def digest(self, index: int | None, path: str, key: bytes) -> bytes | None:
        """The raw sha256 + capability kept for a file, if its lstat key is still ``key``.

        Args:
            index: the file's attested index, None when the manifest lacks it.
            path: the file's path.
            key: its lstat key now.
        """
        if index is None:
            old = self.extra.get(path)
            return old[_K:] if old is not None and old.startswith(key) else None
        flag = self.flags[index]
        at = index * _K
        if flag not in (_MATCH, _DIFFERS) or self.keys[at : at + _K] != key:
            return None
        if flag == _MATCH:
            return file_digest_of(self.manifest.record_at(index))
        return self.other[index]

    def files(self) -> int:
        """Regular files with state: every one the sweep saw, hardlinks included."""
        return self.flags.count(_MATCH) + self.flags.count(_DIFFERS) + len(self.extra)


@dataclass(frozen=True)
class SnapshotCheck:
    """The result of :func:`compare_snapshot`.

    Attributes:
        changes: differences from the attested manifest, in path order.
        state: the state to pass to the next sweep.
        files: regular files seen (hardlinks included).
        hashed: bytes read and hashed (files whose key moved, or all on a full re-hash).
        full: no previous state was used.
        unscannable: what the walk could not check (each is a finding: the
            changes cover only the rest). A path the walk did not reach is
            not reported ``removed``.
    """

    changes: tuple[Change, ...]
    state: LayerState
    files: int
    hashed: int
    full: bool
    unscannable: tuple[Unscannable, ...] = ()


class _Sweep(SnapshotWalk):
    def __init__(
        self,
        root: Path,
        attested: AttestedManifest,
        previous: LayerState | None,
        limits: ManifestLimits,
    ) -> None:
        prior = previous if previous is not None and previous.fits(attested) else None
        super().__init__(root, None, limits, open_first=prior is None)
        self.attested = attested
        self.find = attested.finder()
        self.offsets, self.blob = attested.columns()
        self.prior = prior
        self.new = LayerState(attested, prior)
        self.changes: list[Change] = []
        #: Names ``find`` placed in the directory being listed (then packed
        #: into ``new.names``): regular_file is only called while its
        #: directory is listed, and directories are listed one at a time.
        self.learned: dict[str, int] = {}

    def _index(self, path: str) -> int | None:
        return self.find(path.encode("utf-8"))

    def _directory(self, rel_dir: str, dir_fd: int, stack: list[str], device: int) -> None:
        prefix = f"{rel_dir}/" if rel_dir else ""
        self.learned = {}
        try:
            self._list(prefix, rel_dir, dir_fd, stack, device)
        finally:
            # Packed now: a walk holds one directory's names as a dict at a time.
            self._keep_names(prefix)

    def _list(self, prefix: str, rel_dir: str, dir_fd: int, stack: list[str], device: int) -> None:
        prior = self.prior
        if prior is None or (packed := prior.names.get(prefix)) is None:
            super()._directory(rel_dir, dir_fd, stack, device)
            return
        # The incremental sweep's hot loop: a listed regular file whose lstat
        # key is the one it matched with last time. Every check _visit,
        # _one and regular_file make on it is made here, in the same order,
        # and the entry is taken as they would take it; anything else (or a
        # check that fails) goes to _visit, which decides as for any entry.
        known = _unpack_names(packed)
        limits, flags, keys, new_flags = self.limits, prior.flags, prior.keys, self.new.flags
        max_entries, max_total = limits.max_entries, limits.max_total_size
        # The path length check, once for the directory: every name in
        # ``known`` is valid UTF-8 (it was decoded from it), and when all are
        # ASCII and short enough no path here can be over the limit.
        if not (
            "".join(known).isascii()
            and len(prefix.encode("utf-8")) + max(map(len, known), default=0)
            <= limits.max_path_bytes
        ):
            super()._directory(rel_dir, dir_fd, stack, device)
            return
        visit, pack, regular, match = self._visit, _pack_key, stat.S_IFREG, _MATCH
        count, total = self.count, self.total_size
        try:
            with os.scandir(dir_fd) as it:
                for dirent in it:
                    name = dirent.name
                    i = known.get(name)
                    if i is not None and flags[i] == match and count < max_entries:
                        try:
                            st = dirent.stat(follow_symlinks=False)
                        except OSError:
                            st = None  # _visit records why
                        if st is not None:
                            # os.stat_result's documented tuple order; one
                            # slice costs less than seven attribute loads.
                            mode, ino, dev, nlink, uid, gid, size = st[:7]
                        if (
                            st is not None
                            and mode & 0o170000 == regular
                            and dev == device
                            and nlink == 1
                            and keys.startswith(
                                pack(
                                    ino, size, st.st_mtime_ns, st.st_ctime_ns, mode & 0o7777,
                                    uid, gid,
                                ),
                                i * _K,
                            )
                        ):  # fmt: skip
                            count += 1
                            total += size
                            if total > max_total:
                                self._stop(f"snapshot content exceeds {max_total} bytes")
                            # new.keys started as prior.keys: the key is in place.
                            new_flags[i] = match
                            continue
                    self.count, self.total_size = count, total
                    visit(dirent, prefix + name, dir_fd, stack, device)
                    count, total = self.count, self.total_size
        finally:
            self.count, self.total_size = count, total

    def regular_file(self, rel: str, name: str, dir_fd: int, st: os.stat_result, fd: int) -> None:
        # The per-file path of a full sweep and of files the hot loop above
        # passes on: one lookup, one key, and for an unchanged file nothing
        # else. Helpers are inlined.
        i = self.find(rel.encode("utf-8"))
        if i is None or st.st_nlink > 1:
            # Hardlink groups wait for the end of the walk; an unlisted file is
            # added. Both are rare and take the general path.
            super().regular_file(rel, name, dir_fd, st, fd)
            return
        self.learned[name] = i
        size, mode, uid, gid = st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid
        self.total_size += size
        if self.total_size > self.limits.max_total_size:
            self._stop(f"snapshot content exceeds {self.limits.max_total_size} bytes")
        key = _pack_key(st.st_ino, size, st.st_mtime_ns, st.st_ctime_ns, mode, uid, gid)
        at = i * _K
        new, prior = self.new, self.prior
        new.keys[at : at + _K] = key
        if prior is not None:
            if prior.flags[i] == _MATCH and prior.keys[at : at + _K] == key:
                new.flags[i] = _MATCH
                return
            digest = prior.digest(i, rel, key)
        else:
            digest = None
        if digest is None:
            # The file is read now; its record is compared when its hash is
            # done (before compare_snapshot returns).
            self.hasher.hash_file(name, dir_fd, fd, st, self._compare, i, rel, st)
            self.hashed += size
            return
        self._compare(i, rel, st, digest)

    def _compare(self, i: int, rel: str, st: os.stat_result, digest: bytes) -> None:
        """Compare regular file ``rel``, attested at ``i``, with its record."""
        size, mode, uid, gid = st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid
        new = self.new
        start, end = self.offsets[i], self.offsets[i + 1]
        if self.blob[start:end] == pack_file(mode, uid, gid, size, digest[:32], digest[32:]):
            new.flags[i] = _MATCH
            return
        new.flags[i] = _DIFFERS
        new.other[i] = digest
        seen = _entry(
            rel, EntryType.FILE, mode=mode, uid=uid, gid=gid, size=size,
            sha256=digest[:32].hex(), capability=digest[32:] or None,
        )  # fmt: skip
        self.changes.extend(diff_entries(unpack_entry(rel, bytes(self.blob[start:end])), seen))

    def reuse_digest(self, rel: str, st: os.stat_result) -> bytes | None:
        if self.prior is None:
            return None
        index, key = self._index(rel), _key(st)
        digest = self.prior.digest(index, rel, key)
        if digest is not None:
            self._store(index, rel, key, digest)
        return digest

    def keep_digest(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        self._store(self._index(rel), rel, _key(st), digest)

    def _store(self, index: int | None, rel: str, key: bytes, digest: bytes) -> None:
        if index is None:
            self.new.extra[rel] = key + digest
            return
        at = index * _K
        self.new.keys[at : at + _K] = key
        self.new.flags[index] = _DIFFERS
        self.new.other[index] = digest

    def emit(self, entry: ManifestEntry) -> None:
        # Every entry but a single-link regular file the manifest lists.
        index = self._index(entry.path)
        if index is None:
            self.changes.append(Change(entry.path, "added", None, str(entry.type)))
            return
        if self.new.flags[index] == _UNSEEN:
            self.new.flags[index] = _SEEN
        record = self.attested.record_at(index)
        if record != pack_entry(entry):
            self.changes.extend(diff_entries(unpack_entry(entry.path, record), entry))

    def _keep_names(self, prefix: str) -> None:
        """Add the names this walk placed in directory ``prefix`` to the state's."""
        found, self.learned = self.learned, {}
        if found:
            names = self.new.names
            packed = names.get(prefix)
            names[prefix] = _pack_names(found if packed is None else _unpack_names(packed) | found)

    def removed(self) -> None:
        if self.truncated:
            return  # the walk stopped early: what it did not see is not "removed"
        flags = self.new.flags
        index = flags.find(_UNSEEN)
        while index != -1:
            path = self.attested.path_at(index)
            if self.not_walked(path):
                index = flags.find(_UNSEEN, index + 1)
                continue
            entry = unpack_entry(path, self.attested.record_at(index))
            self.changes.append(Change(entry.path, "removed", str(entry.type), None))
            index = flags.find(_UNSEEN, index + 1)


def compare_snapshot(
    root: Path,
    attested: FileManifest | AttestedManifest,
    previous: LayerState | None = None,
    *,
    limits: ManifestLimits | None = None,
) -> SnapshotCheck:
    """Compare a snapshot directory with its attested manifest, reusing unchanged hashes.

    Gives the changes of ``compare_manifests(attested, scan_snapshot(root)[0])``
    without building the observed manifest.

    Args:
        root: the layer's own snapshot directory.
        attested: the layer's verified manifest (the agent keeps the compact form).
        previous: the state of the previous sweep, or None for a full re-hash.
            A state made against another manifest is not used.
        limits: caps on entries, path length and total content size.

    What the walk cannot check is in the result's ``unscannable``, not raised.

    Raises:
        InvalidInput: the walk itself failed (see :func:`run_walk`).
    """
    if isinstance(attested, FileManifest):
        attested = compact_unhashed(attested)
    walk = _Sweep(root, attested, previous, limits or ManifestLimits())
    run_walk(walk)
    walk.removed()
    walk.changes.sort(key=lambda c: c.path)
    return SnapshotCheck(
        tuple(walk.changes),
        walk.new,
        walk.new.files(),
        walk.hashed,
        full=walk.prior is None,
        unscannable=tuple(walk.unscannable),
    )
