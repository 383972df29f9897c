# SPDX-License-Identifier: Apache-2.0
"""Snapshots service: stat, list, mounts, and short-lived views of committed layers.

``Snapshots.Mounts`` refuses a committed key (FACTS.md), so finding a committed
layer's directory takes a View: a read-only snapshot whose parent is the
layer's chainID. Its mounts list the lower directories, top layer first. The
view is created under a lease that expires on its own, so a view leaked by a
crash is garbage-collected by containerd instead of piling up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.containerd._proto.api.services.leases.v1 import leases_pb2
from agent.containerd._proto.api.services.snapshots.v1 import snapshots_pb2
from agent.containerd._rpc import LEASE_KEY, Rpc, method
from agent.containerd.types import Mount, SnapshotInfo, SnapshotKind
from attestor.errors import Error

__all__ = ["SnapshotService", "VIEW_KEY_PREFIX"]

#: Every view this agent creates has a key with this prefix (so leaks are visible).
VIEW_KEY_PREFIX = "attestor-agent-view-"
# containerd's GC removes a lease (and what it holds) after this label's time.
_EXPIRE_LABEL = "containerd.io/gc.expire"
_log = logging.getLogger(__name__)

_STAT = method(snapshots_pb2.DESCRIPTOR, "Snapshots", "Stat")
_LIST = method(snapshots_pb2.DESCRIPTOR, "Snapshots", "List")
_MOUNTS = method(snapshots_pb2.DESCRIPTOR, "Snapshots", "Mounts")
_VIEW = method(snapshots_pb2.DESCRIPTOR, "Snapshots", "View")
_REMOVE = method(snapshots_pb2.DESCRIPTOR, "Snapshots", "Remove")
_LEASE_CREATE = method(leases_pb2.DESCRIPTOR, "Leases", "Create")
_LEASE_DELETE = method(leases_pb2.DESCRIPTOR, "Leases", "Delete")


def _mounts(raw: Any) -> list[Mount]:
    return [
        Mount(type=m.type, source=m.source, target=m.target, options=tuple(m.options)) for m in raw
    ]


def _info(raw: Any) -> SnapshotInfo:
    return SnapshotInfo(
        name=raw.name,
        parent=raw.parent,
        kind=SnapshotKind(raw.kind),
        labels=dict(raw.labels),
    )


class SnapshotService:
    """The Snapshots API of one snapshotter (``overlayfs`` by default)."""

    def __init__(
        self,
        rpc: Rpc,
        *,
        clock: Callable[[], datetime],
        view_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self._rpc = rpc
        self._clock = clock
        self._view_ttl = view_ttl

    def stat(self, key: str, *, snapshotter: str) -> SnapshotInfo:
        """Stat one snapshot by key (a chainID for committed layers).

        Raises:
            NotFound: no such snapshot.
            UpstreamError: containerd failed.
        """
        req = snapshots_pb2.StatSnapshotRequest(snapshotter=snapshotter, key=key)
        return _info(self._rpc.unary(f"stat snapshot {key}", _STAT, req).info)

    def list_snapshots(
        self, *, snapshotter: str, filters: tuple[str, ...] = ()
    ) -> list[SnapshotInfo]:
        """All snapshots of the snapshotter (optionally filtered).

        Raises:
            UpstreamError: containerd failed.
        """
        req = snapshots_pb2.ListSnapshotsRequest(snapshotter=snapshotter, filters=filters)
        out: list[SnapshotInfo] = []
        for page in self._rpc.stream("list snapshots", _LIST, req, timeout=self._rpc.timeout):
            out.extend(_info(i) for i in page.info)
        return out

    def mounts(self, key: str, *, snapshotter: str) -> list[Mount]:
        """Mounts of an active snapshot (a running container's key: its id).

        Raises:
            NotFound: no such snapshot.
            UpstreamError: containerd failed, or the key names a committed snapshot.
        """
        req = snapshots_pb2.MountsRequest(snapshotter=snapshotter, key=key)
        return _mounts(self._rpc.unary(f"mounts of {key}", _MOUNTS, req).mounts)

    @contextmanager
    def view_mounts(self, parent: str, *, snapshotter: str) -> Iterator[list[Mount]]:
        """Create a view on the committed snapshot ``parent``; yield its mounts.

        The view is removed on exit, also when the body raises.

        Raises:
            NotFound: ``parent`` does not exist.
            UpstreamError: containerd failed to create or remove the view.
        """
        key = VIEW_KEY_PREFIX + uuid.uuid4().hex
        expire = (self._clock() + self._view_ttl).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease = self._rpc.unary(
            "create lease",
            _LEASE_CREATE,
            leases_pb2.CreateRequest(id=key, labels={_EXPIRE_LABEL: expire}),
        ).lease.id
        try:
            req = snapshots_pb2.ViewSnapshotRequest(snapshotter=snapshotter, key=key, parent=parent)
            resp = self._rpc.unary(f"view of {parent}", _VIEW, req, extra=[(LEASE_KEY, lease)])
            try:
                yield _mounts(resp.mounts)
            finally:
                self._remove(key, snapshotter)
        finally:
            # Deleting the lease also lets GC collect the view if _remove failed.
            self._rpc.unary("delete lease", _LEASE_DELETE, leases_pb2.DeleteRequest(id=lease))

    def _remove(self, key: str, snapshotter: str) -> None:
        req = snapshots_pb2.RemoveSnapshotRequest(snapshotter=snapshotter, key=key)
        try:
            self._rpc.unary(f"remove view {key}", _REMOVE, req)
        except Error as e:
            # The lease deletion that follows still releases it to GC; a
            # failing Remove must not hide the body's own exception.
            _log.warning("could not remove view %s: %s", key, e)
