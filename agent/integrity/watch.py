# SPDX-License-Identifier: Apache-2.0
"""Optional inotify watch: a change in a checked directory triggers a check at once.

The directories are those the sweep compares (each attested lower layer's
``snapshots/N/fs`` and each running container's upperdir), every
subdirectory included. An event marks its directory dirty; once the burst
settles (``debounce``, at most ``max_delay`` after its first event) the
``on_ready`` callback wakes the daemon, which re-checks the directories
:meth:`Watcher.begin_sweep` names with the usual incremental check (a
partial sweep, :mod:`agent.integrity.sweep`). The watch only triggers:
what changed, and whether it is a violation, is decided by the one
algorithm in ``layers`` and ``drift``.

The periodic sweeps stay the backstop: a change made before a directory is
watched, an overflowed event queue (then the next sweep is a full one), or a
directory left unwatched when the watch limit is reached (it is then
"degraded": logged once, listed by :meth:`Watcher.status`, checked at the
interval only).

inotify_simple (BSD-2, about 200 lines of ctypes over libc's
``inotify_init1``/``inotify_add_watch``/``inotify_rm_watch``) is used rather
than our own ctypes: it handles EINTR and the event struct parsing, and adds
no threads or recursion policy of its own (watchdog would), so the watch
count stays under our control. fanotify would need CAP_SYS_ADMIN.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify, flags

from agent.integrity.sweep import SweepResult
from attestor.manifest import DirChain, open_root

__all__ = ["WatchStatus", "Watcher", "default_max_watches", "watched_dirs"]

log = logging.getLogger("attestor.agent")

# What changes a manifest entry: content, mode/owner/xattr/times (ATTRIB),
# names. ONLYDIR + DONT_FOLLOW: a directory swapped for a symlink between the
# walk and add_watch must not pull a path outside the snapshot into the watch.
_MASK = (
    flags.MODIFY
    | flags.ATTRIB
    | flags.CLOSE_WRITE
    | flags.CREATE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
    | flags.DONT_FOLLOW
)
# A directory is watched through /proc/self/fd/N, a link the kernel must
# follow to reach the directory held open (see Watcher._add_tree).
_MASK_BY_FD = _MASK & ~flags.DONT_FOLLOW
_NEW_DIR = flags.CREATE | flags.MOVED_TO
_MAX_USER_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")
#: Longest the reader thread blocks (how soon close() returns).
_MAX_BLOCK = 0.5
#: While changes wait for the rate floor, how often the floor is re-read.
_RECHECK = 0.1


def default_max_watches(path: Path = _MAX_USER_WATCHES) -> int:
    """Half the kernel's per-user watch limit (8192 if it cannot be read).

    The limit is per user: root's watches are shared with the kubelet and
    everything else that runs as root on the node, so the agent never takes
    them all.
    """
    try:
        return max(1, int(path.read_text().strip()) // 2)
    except (OSError, ValueError):
        return 8192


def watched_dirs(result: SweepResult) -> set[Path]:
    """The directories a sweep compared: attested lower layers and upperdirs."""
    out: set[Path] = set()
    for container in result.containers:
        for layer in container.layers:
            if layer.check is not None and layer.layer.snapshot_dir is not None:
                out.add(layer.layer.snapshot_dir)
        # An upperdir is compared only once every lower layer has a manifest.
        attested = all(x.attestation.manifest is not None for x in container.layers)
        if container.upper.upperdir is not None and attested:
            out.add(container.upper.upperdir)
    return out


@dataclass(frozen=True)
class WatchStatus:
    """What is watched.

    Attributes:
        roots: directories watched (with their subdirectories).
        watches: inotify watches held.
        max_watches: the agent's cap on ``watches``.
        degraded: directories left to the periodic sweeps, with the reason.
    """

    roots: int
    watches: int
    max_watches: int
    degraded: dict[Path, str]


@dataclass
class _Root:
    wds: set[int] = field(default_factory=set)
    degraded: str | None = None


class Watcher:
    """inotify watches over checked directories; reports the ones that changed.

    Args:
        on_ready: called (from the watch thread) when changed directories are
            ready for a check; the daemon sets its wake event.
        debounce: seconds without events before a burst counts as settled.
        max_delay: a directory written continuously is ready this long after
            its first event anyway.
        min_gap: seconds from the end of a watch-triggered sweep to the next one.
        max_duty: sustained share of the time that watch-triggered sweeps
            take (a continuously written upperdir must not keep the agent
            sweeping); the interval's own sweeps are not counted.
        burst: seconds of sweep time available at once before ``max_duty``
            applies, so a first change after a quiet spell is checked at once
            whenever the last periodic sweep ran.
        max_watches: cap on watches (default: :func:`default_max_watches`).
        clock: monotonic seconds.

    Raises:
        OSError: inotify cannot be initialised (``max_user_instances`` reached).
    """

    def __init__(
        self,
        *,
        on_ready: Callable[[], None],
        debounce: float = 0.15,
        max_delay: float = 1.0,
        min_gap: float = 0.5,
        max_duty: float = 0.1,
        burst: float = 1.0,
        max_watches: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_ready = on_ready
        self._debounce = debounce
        self._max_delay = max_delay
        self._min_gap = min_gap
        self._duty = max_duty
        self._burst = burst
        self._max = max_watches if max_watches is not None else default_max_watches()
        self._clock = clock
        self._ino = INotify()
        self._lock = threading.Lock()
        self._roots: dict[Path, _Root] = {}
        self._wds: dict[int, tuple[Path, Path]] = {}
        self._pending: dict[Path, tuple[float, float]] = {}  # root -> (first, last) event
        self._ready: set[Path] = set()
        self._overflowed = False  # events were lost since the last begin_sweep
        self._not_before = 0.0
        self._notified = False
        self._triggered = False  # the running sweep was started by the watch
        self._held_until = 0.0
        self._credit = burst  # seconds of sweep time the watch may start now
        self._credit_at = clock()
        self._limit_logged = False
        self._freed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the daemon's side ---------------------------------------------------

    def start(self) -> None:
        """Read events in a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._run, name="inotify-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and drop every watch."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_MAX_BLOCK * 4)
        self._ino.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self, roots: Iterable[Path]) -> None:
        """Watch exactly ``roots``: add the new ones (recursively), drop the gone ones."""
        wanted = set(roots)
        with self._lock:
            for root in set(self._roots) - wanted:
                self._remove(root)
                self._freed = True
            retry = self._freed
            self._freed = False
            for root in wanted:
                entry = self._roots.get(root)
                if entry is None:
                    self._roots[root] = _Root()
                    self._add_tree(root, root)
                elif entry.degraded is None and not entry.wds:
                    self._add_tree(root, root)  # its directory was removed and made again
                elif entry.degraded is not None and retry:
                    # Watches were freed: a degraded root may fit now.
                    entry.degraded = None
                    if self._add_tree(root, root):
                        log.info("inotify watch restored", extra={"path": str(root)})

    def ready(self) -> bool:
        """Whether changed directories wait for a check."""
        with self._lock:
            return bool(self._ready)

    def begin_sweep(self) -> frozenset[Path] | None:
        """The directories changed since the last sweep (cleared); holds new triggers.

        None when the event queue overflowed since the last call: events were
        lost, so any directory may have changed (the caller sweeps everything).
        """
        with self._lock:
            ready: frozenset[Path] | None = frozenset(self._ready)
            if self._overflowed:
                ready, self._overflowed = None, False
            self._ready.clear()
            self._triggered, self._notified = self._notified, False
            if not math.isinf(self._not_before):  # not already inside a sweep
                self._held_until = self._not_before
            self._not_before = math.inf
            return ready

    def end_sweep(self, roots: Iterable[Path] | None = None, *, seconds: float) -> None:
        """Sync to ``roots`` (None: keep) and allow the next trigger after the rate floor."""
        if roots is not None:
            self.sync(roots)
        with self._lock:
            now = self._clock()
            self._credit = min(self._burst, self._credit + (now - self._credit_at) * self._duty)
            self._credit_at = now
            if not self._triggered:  # a periodic or event sweep: the watch's floor stands
                self._not_before = self._held_until
                return
            self._credit -= seconds
            # In debt: wait until the credit is back to zero at max_duty.
            self._not_before = now + max(self._min_gap, -self._credit / self._duty)

    def status(self) -> WatchStatus:
        """Roots, watches and degraded roots now."""
        with self._lock:
            degraded = {p: r.degraded for p, r in self._roots.items() if r.degraded is not None}
            return WatchStatus(
                len(self._roots) - len(degraded), len(self._wds), self._max, degraded
            )

    # -- the watch thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll(self._timeout())
            except Exception:
                # A bug here must not end immediate detection silently.
                log.exception("inotify watch step failed")
                self._stop.wait(_MAX_BLOCK)

    def _poll(self, timeout: float) -> None:
        """Read the events that arrive within ``timeout`` seconds and act on them."""
        try:
            events = self._ino.read(timeout=max(0, int(timeout * 1000)))
        except (OSError, ValueError) as e:  # ValueError: closed under us
            if not self._stop.is_set():
                log.error("inotify read failed", extra={"error": str(e)})
                self._stop.wait(_MAX_BLOCK)
            return
        now = self._clock()
        with self._lock:
            for event in events:
                self._event(event.wd, event.mask, event.name, now)
            notify = self._settle(self._clock())
        if notify:
            self._on_ready()

    def _event(self, wd: int, mask: int, name: str, now: float) -> None:
        if mask & flags.Q_OVERFLOW:
            # Events were lost: every root may have changed, and new
            # subdirectories may be unwatched (add_watch on a watched inode
            # returns its wd, so the rewalk adds only what is missing).
            log.warning("inotify queue overflowed; re-checking every watched directory")
            self._overflowed = True
            for root, entry in self._roots.items():
                if entry.degraded is None:
                    self._add_tree(root, root)
                self._mark(root, now)
            return
        found = self._wds.get(wd)
        if found is None:
            return  # a removed watch's late events
        root, directory = found
        if mask & flags.IGNORED:  # the directory is gone (or its watch removed)
            self._wds.pop(wd, None)
            if root in self._roots:
                self._roots[root].wds.discard(wd)
            return
        if mask & flags.ISDIR and mask & _NEW_DIR and self._roots[root].degraded is None:
            self._add_tree(root, directory / name)
        self._mark(root, now)

    def _mark(self, root: Path, now: float) -> None:
        first, _ = self._pending.get(root, (now, now))
        self._pending[root] = (first, now)

    def _settle(self, now: float) -> bool:
        for root, (first, last) in list(self._pending.items()):
            if now - last >= self._debounce or now - first >= self._max_delay:
                del self._pending[root]
                self._ready.add(root)
        if self._ready and not self._notified and now >= self._not_before:
            self._notified = True
            return True
        return False

    def _timeout(self) -> float:
        with self._lock:
            now = self._clock()
            due = [
                min(last + self._debounce, first + self._max_delay)
                for first, last in self._pending.values()
            ]
            if self._ready and not self._notified:
                due.append(now + _RECHECK if math.isinf(self._not_before) else self._not_before)
        if not due:
            return _MAX_BLOCK
        return min(_MAX_BLOCK, max(0.0, min(due) - now))

    # -- watches (called with the lock held) ------------------------------------

    def _add_tree(self, root: Path, top: Path) -> bool:
        """Watch ``top`` and every directory under it; False if ``root`` degraded.

        Each directory is reached from the root's descriptor one component at
        a time without following a symlink (:class:`DirChain`) and watched
        through ``/proc/self/fd``, which names the very directory held open:
        a directory renamed away and replaced by a symlink cannot pull a
        directory outside the snapshot into the watch.
        """
        try:
            root_fd = open_root(root)
        except OSError as e:
            return self._degrade(root, f"cannot watch {root}: {e.strerror}")
        chain = DirChain(root_fd)
        stack: list[tuple[str, ...]] = [top.relative_to(root).parts]
        try:
            while stack:
                parts = stack.pop()
                if len(self._wds) >= self._max:
                    return self._degrade(
                        root, f"the agent's cap of {self._max} inotify watches", limit=True
                    )
                try:
                    fd, owned = chain.open(parts) if parts else (root_fd, False)
                except OSError:
                    continue  # gone or replaced meanwhile: its parent's event follows
                try:
                    if not self._watch(root, root.joinpath(*parts), fd, parts, stack):
                        return False
                finally:
                    if owned:
                        os.close(fd)
        finally:
            chain.close()
            os.close(root_fd)
        return True

    def _watch(
        self,
        root: Path,
        directory: Path,
        fd: int,
        parts: tuple[str, ...],
        stack: list[tuple[str, ...]],
    ) -> bool:
        """Watch the directory open as ``fd``; queue its subdirectories (False: degraded)."""
        try:
            wd = self._ino.add_watch(f"/proc/self/fd/{fd}", _MASK_BY_FD)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.ENOMEM):
                return self._degrade(
                    root, "the kernel's inotify watch limit (max_user_watches)", limit=True
                )
            return self._degrade(root, f"cannot watch {directory}: {e.strerror}")
        self._wds[wd] = (root, directory)
        self._roots[root].wds.add(wd)
        try:
            with os.scandir(fd) as it:
                stack.extend((*parts, d.name) for d in it if d.is_dir(follow_symlinks=False))
        except OSError:
            pass  # vanished meanwhile
        return True

    def _degrade(self, root: Path, reason: str, *, limit: bool = False) -> bool:
        # A partial tree would miss changes silently: the whole root goes back
        # to the periodic sweeps, and its watches go to roots that fit.
        self._unwatch(root)
        self._roots[root].degraded = reason
        extra = {"path": str(root), "reason": reason, "watches": len(self._wds)}
        if limit:
            if not self._limit_logged:
                self._limit_logged = True
                log.warning(
                    "inotify watch limit reached; directories that do not fit are checked "
                    "at the sweep interval only",
                    extra=extra,
                )
            else:
                log.debug("inotify watch degraded", extra=extra)
        else:
            log.warning("inotify watch degraded", extra=extra)
        return False

    def _unwatch(self, root: Path) -> None:
        entry = self._roots[root]
        for wd in entry.wds:
            self._wds.pop(wd, None)
            try:
                self._ino.rm_watch(wd)
            except OSError:
                pass  # already gone with its directory (IN_IGNORED pending)
        entry.wds.clear()

    def _remove(self, root: Path) -> None:
        self._unwatch(root)
        del self._roots[root]
        self._pending.pop(root, None)
        self._ready.discard(root)
