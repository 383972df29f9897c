# SPDX-License-Identifier: Apache-2.0
"""Background pieces of :meth:`agent.daemon.Daemon.run`.

Registration retried with backoff until it succeeds, one containerd event
watcher per namespace that wakes the sweep loop on events that may change
what runs, and the optional inotify watch (:class:`WatchHook`) that wakes it
when a checked directory changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from agent.config import AgentConfig
from agent.containerd import ContainerdClient, EventSubscription
from agent.integrity.sweep import SweepResult
from agent.integrity.watch import Watcher, watched_dirs
from attestor.errors import Error, Unauthorized

__all__ = [
    "WATCHED_TOPICS",
    "WatchHook",
    "logged_sweep",
    "register_until_ok",
    "start_thread",
    "watch_events",
]

log = logging.getLogger("attestor.agent")

#: containerd event topics after which a container's layers may have changed,
#: so the daemon sweeps at once instead of waiting for the next interval.
WATCHED_TOPICS = frozenset(
    {
        "/images/create",
        "/images/update",
        "/snapshot/commit",
        "/containers/create",
        "/containers/delete",
        "/tasks/start",
        "/tasks/exit",
    }
)
_REREGISTER_MAX = 60.0


def logged_sweep(
    sweep: Callable[[Collection[Path] | None], SweepResult],
    watch: WatchHook,
    *,
    full: bool,
    clock: Callable[[], float],
) -> bool:
    """One sweep (of the changed directories only, when the watch can say which).

    Logs it, or its failure: one bad sweep (containerd restarting, a full disk)
    must not end the agent; the next interval retries. Returns whether it was
    a full sweep, which resets the interval.
    """
    partial, changed = watch.begin(full=full)
    started = clock()
    try:
        result = sweep(partial)
    except Error as e:
        log.error("sweep failed", extra={"error": e.message})
        watch.end(None, clock() - started)
        return partial is None
    seconds = clock() - started
    log.info(
        "sweep",
        extra={
            "containers": len(result.containers),
            "violations": len(result.violations),
            "seconds": round(seconds, 3),
            "scope": "partial" if result.partial else "full",
            "changed": changed,
            **watch.end(result, seconds),
        },
    )
    return not result.partial


def start_thread(
    name: str, target: Callable[..., None], *args: object, **kwargs: object
) -> threading.Thread:
    """``target(*args, **kwargs)`` in a started daemon thread called ``name``."""
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, name=name, daemon=True)
    thread.start()
    return thread


def register_until_ok(register: Callable[[], str], stop: threading.Event) -> bool:
    """Call ``register`` until it succeeds (True) or ``stop`` is set (False).

    Raises:
        Unauthorized: the server refused the token (retrying cannot help).
    """
    delay = 1.0
    while not stop.is_set():
        try:
            register()
            return True
        except Unauthorized:
            raise
        except Error as e:
            log.warning("registration failed", extra={"error": e.message, "retry_in": delay})
        stop.wait(delay)
        delay = min(_REREGISTER_MAX, delay * 2)
    return False


def watch_events(
    client: ContainerdClient,
    stop: threading.Event,
    wake: threading.Event,
    subscriptions: list[EventSubscription],
    *,
    full: threading.Event | None = None,
) -> None:
    """Set ``wake`` on each watched event of ``client``'s namespace until ``stop``.

    Each subscription is appended to ``subscriptions`` so the loop can close it.
    ``full`` is set first: what runs may have changed, so the sweep this
    event starts must be a full one, not the watch's partial one.
    """
    while not stop.is_set():
        try:
            sub = client.subscribe([f'namespace=="{client.namespace}"'])
            subscriptions.append(sub)
            with sub:
                for event in sub:
                    if event.topic in WATCHED_TOPICS:
                        log.debug("event", extra={"topic": event.topic})
                        if full is not None:
                            full.set()
                        wake.set()
                    if stop.is_set():
                        break
        except Error as e:
            log.warning(
                "event stream failed", extra={"namespace": client.namespace, "error": e.message}
            )
        stop.wait(2.0)


class WatchHook:
    """The inotify watch's part of the run loop; every method is a no-op when it is off.

    Args:
        config: ``watch`` and ``watch_max_watches`` are read.
        wake: set when changed directories are ready for a check.
        watcher: a ready-made watcher (tests); default: built from ``config``.
    """

    def __init__(
        self, config: AgentConfig, wake: threading.Event, *, watcher: Watcher | None = None
    ) -> None:
        self.watcher = watcher
        if watcher is None and config.watch:
            try:
                self.watcher = Watcher(on_ready=wake.set, max_watches=config.watch_max_watches)
            except OSError as e:
                # fs.inotify.max_user_instances reached: the sweeps still run.
                log.warning("inotify unavailable; checking at the interval only",
                            extra={"error": str(e)})  # fmt: skip
        if self.watcher is not None:
            self.watcher.start()

    def settled(self) -> bool:
        """True when the wake came from the watch (already debounced)."""
        return self.watcher is not None and self.watcher.ready()

    def begin(self, *, full: bool) -> tuple[frozenset[Path] | None, int | str]:
        """Start a sweep: a partial one when only the watch asked for it.

        Args:
            full: the interval or a containerd event asks for a full sweep.

        Returns:
            The directories a partial sweep re-checks, or None for a full
            sweep (``full``, the watch off or silent, or the watch lost
            events to a queue overflow: anything may have changed); then how
            many watched directories changed, for the log ("all" after a loss).
        """
        if self.watcher is None:
            return None, 0
        changed = self.watcher.begin_sweep()
        if changed is None:
            return None, "all"
        return (None if full or not changed else changed), len(changed)

    def end(self, result: SweepResult | None, seconds: float) -> dict[str, int]:
        """Watch what ``result`` checked; the status for the log.

        A failed (None) or partial sweep keeps the watched set: a partial
        sweep saw only some containers, and syncing to them would drop the rest.
        """
        if self.watcher is None:
            return {}
        roots = None if result is None or result.partial else watched_dirs(result)
        self.watcher.end_sweep(roots, seconds=seconds)
        status = self.watcher.status()
        return {"watched": status.roots, "watches": status.watches,
                "watch_degraded": len(status.degraded)}  # fmt: skip

    def close(self) -> None:
        """Stop the watch thread and drop the watches."""
        if self.watcher is not None:
            self.watcher.close()
