# SPDX-License-Identifier: Apache-2.0
"""Frozen values the containerd client returns instead of protobuf messages."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from attestor.digests import Digest

__all__ = [
    "Container",
    "ContentInfo",
    "Image",
    "Mount",
    "SnapshotInfo",
    "SnapshotKind",
    "Task",
    "TaskStatus",
    "UNCOMPRESSED_LABEL",
    "Version",
]

#: Content label containerd sets on a layer blob: the layer's diffID.
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"


@dataclass(frozen=True)
class Version:
    """The daemon's version and revision strings."""

    version: str
    revision: str


@dataclass(frozen=True)
class Image:
    """An image record: a name pointing at a manifest or index descriptor."""

    name: str
    target_digest: Digest
    media_type: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Container:
    """A container record (metadata only; its process is a :class:`Task`)."""

    id: str
    image: str
    snapshotter: str
    snapshot_key: str
    runtime: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentInfo:
    """A blob in the content store."""

    digest: Digest
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)


class SnapshotKind(enum.Enum):
    """Mirrors ``containerd.services.snapshots.v1.Kind``."""

    UNKNOWN = 0
    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot: committed ones are named by chainID, active ones by key."""

    name: str
    parent: str
    kind: SnapshotKind
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    """One mount as containerd describes it (``mount(8)`` type, source, options)."""

    type: str
    source: str
    target: str = ""
    options: tuple[str, ...] = ()

    def option(self, name: str) -> str | None:
        """Value of a ``name=value`` option, or None when absent."""
        prefix = name + "="
        for option in self.options:
            if option.startswith(prefix):
                return option[len(prefix) :]
        return None

    @property
    def lowerdirs(self) -> tuple[Path, ...]:
        """Overlay ``lowerdir=`` entries, top layer first; a bind mount's source.

        A view of a single committed layer comes back as a read-only bind
        mount of that layer's directory instead of an overlay.
        """
        if self.type == "bind":
            return (Path(self.source),)
        lower = self.option("lowerdir")
        return tuple(Path(p) for p in lower.split(":")) if lower else ()

    @property
    def upperdir(self) -> Path | None:
        """Overlay ``upperdir=`` (an active snapshot's rw layer), else None."""
        upper = self.option("upperdir")
        return Path(upper) if upper else None


class TaskStatus(enum.Enum):
    """Mirrors ``containerd.v1.types.Status``."""

    UNKNOWN = 0
    CREATED = 1
    RUNNING = 2
    STOPPED = 3
    PAUSED = 4
    PAUSING = 5


@dataclass(frozen=True)
class Task:
    """A container's init process as the Tasks service reports it."""

    container_id: str
    pid: int
    status: TaskStatus
    exit_status: int = 0
    exited_at: datetime | None = None
