# SPDX-License-Identifier: Apache-2.0
"""The merged attested lower layers of a container (drift's reference), compactly.

Held between sweeps, one per image in use: a sorted path table and an 8-byte
slot per path, the layers' compact manifests holding the entries.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterator, Mapping, Sequence

from attestor.manifest import (
    AttestedManifest,
    EntryType,
    FileManifest,
    ManifestEntry,
    PathTable,
    compact_unhashed,
    pack_entry,
    unpack_entry,
)

__all__ = ["MergedView", "merged_view"]


class MergedView(Mapping[str, ManifestEntry]):
    """The merged attested rootfs as path -> entry.

    Keeps, per path, which layer and which entry of it (one 8-byte slot), and
    the layers' compact manifests; entries are decoded on lookup, so the view
    adds only its own index to what the sweep already holds in memory.
    The paths sit in a sorted path table, about 25 bytes per path where a
    ``dict[str, int]`` took about 130 (6.7 MB for a 50,000-path image).
    """

    __slots__ = ("_layers", "_paths", "_slots")

    def __init__(
        self, layers: Sequence[AttestedManifest], paths: PathTable, slots: array[int]
    ) -> None:
        self._layers = tuple(layers)
        self._paths = paths
        self._slots = slots

    def _slot(self, path: object) -> int | None:
        if not isinstance(path, str):
            return None
        index = self._paths.find(path.encode("utf-8", "surrogatepass"))
        return None if index is None else self._slots[index]

    def _entry(self, path: str, slot: int) -> ManifestEntry:
        layer, index = divmod(slot, _SPAN)
        return unpack_entry(path, self._layers[layer].record_at(index))

    def __getitem__(self, path: str) -> ManifestEntry:
        slot = self._slot(path)
        if slot is None:
            raise KeyError(path)
        return self._entry(path, slot)

    def lookup(self, path: str) -> ManifestEntry | None:
        """The entry at ``path``, if any (``get`` without a KeyError per miss)."""
        slot = self._slot(path)
        return None if slot is None else self._entry(path, slot)

    def __iter__(self) -> Iterator[str]:
        return (self._paths.at(i).decode("utf-8") for i in range(len(self._paths)))

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return self._slot(path) is not None

    def has_under(self, directory: str) -> bool:
        """Whether any path of the view lies below ``directory``."""
        prefix = (directory + "/").encode("utf-8", "surrogatepass")
        table = self._paths
        # The first path >= prefix is in the block whose sample is the last
        # <= prefix, or it is the next block's sample.
        block = max(0, bisect.bisect_right(table.samples, prefix) - 1)
        if not table.blocks:
            return False
        following = [p for p in bytes(table.blocks[block]).split(b"\0")[1:-1] if p >= prefix]
        if not following and block + 1 < len(table.samples):
            following = [table.samples[block + 1]]
        return bool(following) and following[0].startswith(prefix)


_SPAN = 2**32  # more entries than any layer may hold (ManifestLimits.max_entries)
_WHITEOUT = pack_entry(ManifestEntry("x", EntryType.WHITEOUT))[0]
_OPAQUE = pack_entry(ManifestEntry("x", EntryType.OPAQUE_DIR, mode=0, uid=0, gid=0))[0]
_DIR = pack_entry(ManifestEntry("x", EntryType.DIR, mode=0, uid=0, gid=0))[0]
_DIR_KINDS = frozenset({_OPAQUE, _DIR})


def _hidden(path: str, number: int, hide: dict[str, int]) -> bool:
    """Whether a directory above ``path`` hides layer ``number``'s entries below it."""
    at = path.find("/")
    while at != -1:
        if hide.get(path[: at + 1], -1) > number:
            return True
        at = path.find("/", at + 1)
    return False


def _hide(hide: dict[str, int], directory: str, number: int) -> None:
    below = directory + "/"
    hide[below] = max(number, hide.get(below, -1))


def _layer_paths(number: int, layer: AttestedManifest) -> Iterator[tuple[str, int, int]]:
    for index in range(len(layer)):
        yield layer.path_at(index), -number, index


def merged_view(layers: Sequence[FileManifest | AttestedManifest]) -> MergedView:
    """The rootfs the attested layers give (bottom layer first), as path -> entry.

    Whiteouts remove a path and its descendants; an opaque directory hides
    what lower layers had below it, and so does a non-directory over a
    directory (OCI image-spec "Whiteouts").

    The layers' sorted paths are merged in path order (the table's order),
    topmost layer first for a path, so the view is written as it is read:
    no dict of every path is built on the way.
    """
    compact = [m if isinstance(m, AttestedManifest) else compact_unhashed(m) for m in layers]
    paths, slots = PathTable(), array("Q")
    # "dir/" -> the highest layer whose entry at dir hides the lower layers'
    # paths below it: a whiteout or an opaque directory, or a non-directory
    # over a lower layer's directory (only a directory has paths below it in
    # its layer). An ancestor comes before its descendants in path order, so
    # it is known by the time they come; entries at one path come together,
    # the topmost layer first.
    hide: dict[str, int] = {}
    last: str | None = None
    over_dir = -1  # the highest layer with a non-directory at ``last``
    for path, neg, index in heapq.merge(*(_layer_paths(n, c) for n, c in enumerate(compact))):
        number = -neg
        kind = compact[number].record_at(index)[0]
        if path != last:
            over_dir = -1
        if kind == _WHITEOUT:
            _hide(hide, path, number)
        elif kind not in _DIR_KINDS:
            over_dir = max(over_dir, number)
        else:
            if kind == _OPAQUE:
                _hide(hide, path, number)
            if over_dir > number:
                _hide(hide, path, over_dir)
        if path == last:
            continue  # under the topmost layer's entry at this path
        last = path
        if kind == _WHITEOUT or (hide and _hidden(path, number, hide)):
            continue
        paths.append(path.encode("utf-8"))
        slots.append(number * _SPAN + index)
    return MergedView(compact, paths.finish(), slots)
