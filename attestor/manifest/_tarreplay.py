# SPDX-License-Identifier: Apache-2.0
"""The path table a layer tar is replayed into, as containerd's applier would.

Used by :mod:`attestor.manifest._tar`, which reads the entries and applies
them; this module holds the table and the rules that depend on what is
already in it: replacement, implicit parents (from the lower layers, as
containerd's ``mkparent``), opaque directories, and the end-of-layer check
of listed directories.
"""

from __future__ import annotations

from collections.abc import Sequence

from attestor.errors import InvalidInput, TooLarge
from attestor.manifest._limits import ManifestLimits
from attestor.manifest._model import EntryType, FileManifest, ManifestEntry

__all__ = ["IMPLICIT_DIR_MODE", "OPAQUE", "Inode", "Node", "Replay"]

OPAQUE = ".wh..wh..opq"
_DIR_TYPES = frozenset({EntryType.DIR, EntryType.OPAQUE_DIR})
# Path lookups allowed per allowed entry, for symlink resolution and the
# lower-layer checks: deep paths over many layers must not cost quadratic time.
_LOOKUPS_PER_ENTRY = 32
#: What containerd's mkparent gives a missing parent with no lower directory.
IMPLICIT_DIR_MODE = 0o755


# The replay holds one object per path for up to max_entries paths, so both
# classes use __slots__ and a regular file is stored as its Inode alone
# (most entries are files): no per-entry __dict__, child set or wrapper.
class Inode:
    """A regular file's content and attributes, shared by its hardlinks."""

    __slots__ = ("capability", "first", "gid", "mode", "sha256", "size", "uid")

    def __init__(
        self, mode: int, uid: int, gid: int, size: int, sha256: str, capability: bytes | None
    ) -> None:
        self.mode, self.uid, self.gid = mode, uid, gid
        self.size, self.sha256, self.capability = size, sha256, capability
        #: The smallest path naming this inode, found when entries are built.
        self.first: str | None = None


class Node:
    """Any other path; only directories get a set of children, on demand."""

    __slots__ = (
        "capability",
        "children",
        "devmajor",
        "devminor",
        "gid",
        "link",
        "mode",
        "type",
        "uid",
    )

    def __init__(
        self,
        type: EntryType,  # noqa: A002 - the manifest's own field name
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        link: str | None = None,
        capability: bytes | None = None,
        devmajor: int | None = None,
        devminor: int | None = None,
    ) -> None:
        self.type = type
        self.mode, self.uid, self.gid = mode, uid, gid
        self.link, self.capability = link, capability
        self.devmajor, self.devminor = devmajor, devminor
        self.children: set[str] | None = None


def _components(path: str) -> list[str]:
    """``path``'s names without empty and ``.`` ones, last first (a stack)."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


class Replay:
    """The unpacked layer as a path table, mutated entry by entry."""

    def __init__(self, limits: ManifestLimits, lower: Sequence[FileManifest]) -> None:
        self.limits = limits
        self.lower = lower
        self.nodes: dict[str, Node | Inode] = {}
        self.total_size = 0
        self.path_bytes = 0
        self.members = 0
        #: Paths of directory headers: containerd sets their times last.
        self.dir_headers: set[str] = set()
        # Path lookups left for resolving symlinks and checking lower layers;
        # deep paths over many layers must not cost quadratic time.
        self._work = _LOOKUPS_PER_ENTRY * limits.max_entries
        # One int object per distinct mode instead of one per entry.
        self._modes: dict[int, int] = {}

    def spend(self, lookups: int = 1) -> None:
        """Charge path lookups against the layer's budget.

        Raises:
            TooLarge: once the budget is spent.
        """
        self._work -= lookups
        if self._work < 0:
            raise TooLarge("layer needs too many path lookups (deep paths, symlinks, layers)")

    def mode(self, value: int) -> int:
        """``value``'s permission bits, as a shared int object."""
        bits = value & 0o7777
        return self._modes.setdefault(bits, bits)

    def count_path(self, *texts: str) -> None:
        """Charge path and link text against ``max_total_path_bytes``.

        Raises:
            TooLarge: once the layer's names exceed the cap.
        """
        self.path_bytes += sum(len(t.encode()) for t in texts)
        if self.path_bytes > self.limits.max_total_path_bytes:
            raise TooLarge(
                f"layer names and link targets exceed {self.limits.max_total_path_bytes} bytes"
            )

    def _remove(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent:
            siblings = self._children(parent)
            if siblings is not None:
                siblings.discard(path)
        pending = [path]
        while pending:  # iterative: paths may nest ~2000 levels deep
            node = self.nodes.pop(pending.pop())
            if isinstance(node, Node) and node.children:
                pending.extend(node.children)

    def _children(self, directory: str) -> set[str] | None:
        node = self.nodes[directory]
        return node.children if isinstance(node, Node) else None

    def _implicit_dir(self, path: str) -> Node:
        # containerd's mkparent copies mode, owner and non-trusted xattrs from
        # the topmost lower layer holding this path if it is a directory there.
        # It looks in each lower layer's own directory with symlinks resolved
        # inside it, so a lower symlink at or above the path would make it
        # copy another directory, and a lower non-directory above it makes
        # the lookup fail with ENOTDIR: refuse both.
        for layer in self.lower:
            parent = path
            while parent:
                self.spend()
                above = layer.get(parent)
                if above is not None and (
                    above.type is EntryType.SYMLINK
                    or (parent != path and above.type not in _DIR_TYPES)
                ):
                    raise InvalidInput(
                        f"implicit directory {path!r} lies under a lower layer's "
                        f"{above.type.value} {parent!r}"
                    )
                parent = parent.rpartition("/")[0]
            below = layer.get(path)
            if below is None:
                continue
            if below.type in _DIR_TYPES:
                return Node(
                    EntryType.DIR,
                    mode=below.mode,
                    uid=below.uid,
                    gid=below.gid,
                    capability=below.capability,
                )
            break
        return Node(EntryType.DIR, mode=IMPLICIT_DIR_MODE, uid=0, gid=0)

    def ensure_parents(self, path: str) -> None:
        missing: list[str] = []
        parent = path.rpartition("/")[0]
        while parent:
            node = self.nodes.get(parent)
            if node is not None:
                kind = node.type if isinstance(node, Node) else EntryType.FILE
                if kind not in _DIR_TYPES:
                    raise InvalidInput(f"parent of {path!r} is a {kind.value}, not a directory")
                break
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for directory in reversed(missing):
            self.count_path(directory)
            self._insert(directory, self._implicit_dir(directory))

    def _insert(self, path: str, node: Node | Inode) -> None:
        if len(self.nodes) >= self.limits.max_entries:
            raise TooLarge(f"layer has more than {self.limits.max_entries} entries")
        self.nodes[path] = node
        parent = path.rpartition("/")[0]
        if parent:
            owner = self.nodes[parent]
            if not isinstance(owner, Node):  # pragma: no cover - ensure_parents checked
                raise InvalidInput(f"parent of {path!r} is not a directory")
            if owner.children is None:
                owner.children = set()
            owner.children.add(path)

    def put(self, path: str, node: Node | Inode) -> None:
        """Place ``node`` at ``path``; a directory over a directory merges."""
        self.ensure_parents(path)
        old = self.nodes.get(path)
        if (
            isinstance(old, Node)
            and old.type in _DIR_TYPES
            and isinstance(node, Node)
            and node.type is EntryType.DIR
        ):
            # containerd keeps the directory (and its opaque xattr) and applies
            # the new header's owner, mode and xattrs.
            old.mode, old.uid, old.gid = node.mode, node.uid, node.gid
            if node.capability is not None:
                old.capability = node.capability
            return
        if old is not None:
            self._remove(path)
        self._insert(path, node)

    def set_opaque(self, directory: str) -> None:
        if not directory:
            raise InvalidInput("opaque marker at the layer root is not supported")
        # The marker's own path makes the directory exist (implicitly if needed).
        self.ensure_parents(f"{directory}/{OPAQUE}")
        node = self.nodes[directory]
        if not isinstance(node, Node) or node.type not in _DIR_TYPES:
            raise InvalidInput(f"opaque marker under non-directory {directory!r}")
        node.type = EntryType.OPAQUE_DIR

    def check_dir_headers(self) -> None:
        """Require every directory header's path to still resolve at the end.

        After the last entry containerd's applier sets the times of each
        directory the tar listed, at a path resolved with ``fs.RootPath``
        (symlinks followed inside the layer), and fails the unpack if that
        path is gone, e.g. when a later entry replaced an ancestor.

        Raises:
            InvalidInput: when such a path does not resolve.
            TooLarge: when resolving costs more lookups than the budget.
        """
        for path in self.dir_headers:
            if not self._resolves(path):
                raise InvalidInput(
                    f"directory {path!r} does not resolve at the end of the layer "
                    "(containerd's unpack fails setting its times)"
                )

    def _resolves(self, path: str) -> bool:
        # fs.RootPath over the path table: follow symlinks, stay in the root.
        # Targets with ".." are cleaned lexically by Go, so they are not
        # followed here: such a layer is refused.
        pending = _components(path)
        resolved: list[str] = []
        hops = 0
        while pending:
            self.spend()
            part = pending.pop()
            here = "/".join([*resolved, part])
            node = self.nodes.get(here)
            if node is None:
                return False
            if isinstance(node, Node) and node.type is EntryType.SYMLINK:
                target = node.link or ""
                hops += 1
                if hops > 255 or ".." in target.split("/"):
                    return False
                if target.startswith("/"):
                    resolved = []
                more = _components(target)
                self.spend(len(more))
                pending.extend(more)
                continue
            kind = node.type if isinstance(node, Node) else EntryType.FILE
            if pending and kind not in _DIR_TYPES:
                return False  # ENOTDIR
            resolved.append(part)
        return True

    def entries(self) -> list[ManifestEntry]:
        """The manifest entries; empties the table as it goes (peak memory).

        A hardlink group's smallest path is its file; the others link to it.
        """
        for path, node in self.nodes.items():
            if isinstance(node, Inode) and (node.first is None or path < node.first):
                node.first = path
        out: list[ManifestEntry] = []
        while self.nodes:
            path, node = self.nodes.popitem()
            if isinstance(node, Inode):
                first = node.first
                out.append(
                    ManifestEntry(
                        path=path,
                        type=EntryType.FILE if first == path else EntryType.HARDLINK,
                        mode=node.mode,
                        uid=node.uid,
                        gid=node.gid,
                        size=node.size,
                        sha256=node.sha256,
                        link=None if first == path else first,
                        capability=node.capability,
                    )
                )
            else:
                out.append(
                    ManifestEntry(
                        path=path,
                        type=node.type,
                        mode=node.mode,
                        uid=node.uid,
                        gid=node.gid,
                        link=node.link,
                        capability=node.capability,
                        devmajor=node.devmajor,
                        devminor=node.devminor,
                    )
                )
        return out
