# SPDX-License-Identifier: Apache-2.0
"""Background pieces of :meth:`agent.daemon.Daemon.run`.

Registration retried with backoff until it succeeds, and one containerd event
watcher per namespace that wakes the sweep loop on events that may change
what runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.containerd import ContainerdClient, EventSubscription
from attestor.errors import Error, Unauthorized

__all__ = ["WATCHED_TOPICS", "register_until_ok", "watch_events"]

log = logging.getLogger("attestor.agent")

#: Event topics that trigger an immediate sweep (issue 5, item 3).
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
) -> None:
    """Set ``wake`` on each watched event of ``client``'s namespace until ``stop``.

    Each subscription is appended to ``subscriptions`` so the loop can close it.
    """
    while not stop.is_set():
        try:
            sub = client.subscribe([f'namespace=="{client.namespace}"'])
            subscriptions.append(sub)
            with sub:
                for event in sub:
                    if event.topic in WATCHED_TOPICS:
                        log.debug("event", extra={"topic": event.topic})
                        wake.set()
                    if stop.is_set():
                        break
        except Error as e:
            log.warning(
                "event stream failed", extra={"namespace": client.namespace, "error": e.message}
            )
        stop.wait(2.0)
