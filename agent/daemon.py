# SPDX-License-Identifier: Apache-2.0
"""``attestor-agent run``: the daemon loop.

Register (agent id, pinned keys), then sweep every ``interval`` seconds and
whenever containerd publishes an event that may change what runs (image
create/update, snapshot commit, container create/delete, task start/exit).
New violations go to the durable spool and are delivered by a background
:class:`~agent.spool.Deliverer` (the violation id is the idempotency key);
provenance reports go to their own spool on change and at finalize. The
configured response (alert, pause, kill) is applied to a container with a
new violation.

The revocation feed is polled every ``revocation_poll_interval`` seconds; a
changed set re-verifies every layer at the next sweep. A feed anomaly (stale,
rejected page) is logged, noted in every container's integrity history, and
``revocation_fail_mode`` is applied to containers first seen while it lasts.
With ``watch`` on, an inotify watch over the checked directories also wakes
the loop (:class:`agent._daemon_loop.WatchHook`); the interval stays the backstop.
A sweep the watch alone started is partial: it re-checks only the changed
directories and the containers using them, and finalizes nothing. An
interval sweep, a containerd event or a lost inotify event (queue
overflow) gives a full sweep.

Helpers: :mod:`agent._containers` (which containers are live, ended or
finalized), :mod:`agent._recorder` (findings and reports into the spools),
:mod:`agent._responder` (responses), :mod:`agent._daemon_loop` (threads).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from agent._containers import ContainerBook, Key
from agent._daemon_loop import (
    WATCHED_TOPICS,
    WatchHook,
    logged_sweep,
    register_until_ok,
    start_thread,
    watch_events,
)
from agent._recorder import Recorder
from agent._responder import Responder
from agent.cache import AttestationCache
from agent.check import (
    AGENT_VERSION,
    FollowerFactory,
    RegisteringServer,
    pin_keys,
    pinned_verifier,
    trusted_keys,
)
from agent.config import AgentConfig
from agent.containerd import ContainerdClient, EventSubscription
from agent.integrity.attestation import KeylessTrust, ServerAttestations
from agent.integrity.budget import Budget
from agent.integrity.drift import UpperChecker
from agent.integrity.layers import LayerChecker
from agent.integrity.ledger import Ledger
from agent.integrity.pending import PENDING_FILE, PendingClock
from agent.integrity.sweep import Sweeper, SweepResult
from agent.revocation import FeedFollower, PollResult
from agent.server import ServerKey
from agent.spool import Backoff, Deliverer, DrainResult, Sender, Spool
from agent.trust import KeyPins
from attestor.errors import ConfigError, Error
from attestor.revocation import RevocationSet

__all__ = ["WATCHED_TOPICS", "Daemon", "DaemonServer"]

log = logging.getLogger("attestor.agent")

#: Events arrive in bursts (a container start is create + start + mounts).
_DEBOUNCE = 0.2
_STOP_POLL = 0.5


class DaemonServer(RegisteringServer, Protocol):
    """Server calls of the daemon (a :class:`agent.server.ServerClient`)."""

    def heartbeat(
        self, agent_id: str, *, containers: int, layers: int, pending_violations: int
    ) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The agent's run loop; :meth:`sweep_once` is one step of it (tests call it).

    Args:
        config: the agent configuration.
        server: the server client.
        clients: one containerd client per covered namespace.
        violations: spool of ``Violation.to_dict()`` records.
        reports: spool of ``ContainerReport.to_dict()`` records.
        violation_sender: delivers a batch of violation records.
        report_sender: delivers a batch of report records.
        cache: the verified attestation cache.
        clock: monotonic seconds; ``wall``: UTC now.
        backoff: the deliverers' retry schedule.
        revocations: builds the revocation feed follower from the pinned keys
            (:func:`agent.check.feed_follower`); None follows no feed.
        ledger: what was already reported (default: an empty, in-memory one).
        keyless: pinned keyless trust (None: keyless attestations are bad-signature).
        pins: the pinned server keys (default: in memory only, trusted on first use).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        server: DaemonServer,
        clients: Sequence[ContainerdClient],
        violations: Spool,
        reports: Spool,
        violation_sender: Sender,
        report_sender: Sender,
        cache: AttestationCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
        backoff: Backoff | None = None,
        revocations: FollowerFactory | None = None,
        ledger: Ledger | None = None,
        keyless: KeylessTrust | None = None,
        pins: KeyPins | None = None,
    ) -> None:
        self.config = config
        self.pins = pins if pins is not None else KeyPins(None)
        #: Why the server's last key set was refused (None while it is accepted).
        self.key_anomaly: str | None = None
        self._keys_polled_at: float | None = None
        self._keyless = keyless
        self._server = server
        self._clients: Mapping[str, ContainerdClient] = {c.namespace: c for c in clients}
        self.violations = violations
        self.reports = reports
        self._cache = cache
        self._clock = clock
        self._wall = wall
        self._violation_deliverer = Deliverer(violations, violation_sender, backoff=backoff)
        self._report_deliverer = Deliverer(reports, report_sender, backoff=backoff)
        self.violation_wake = threading.Event()
        self.report_wake = threading.Event()
        self.wake = threading.Event()
        #: Set with ``wake`` by a containerd event: the next sweep is a full one.
        self.full_wake = threading.Event()
        self.ledger = ledger if ledger is not None else Ledger()
        self._follower_factory = revocations
        self.follower: FeedFollower | None = None
        #: The current revocation feed anomaly (None while the feed is sound).
        self.feed_anomaly: str | None = None
        self.agent_id: str | None = None
        self._sweeper: Sweeper | None = None
        self._attestations: ServerAttestations | None = None
        self._keys: tuple[ServerKey, ...] = ()
        self._containers = ContainerBook(self._clients, selector=config.selector)
        self._responder = Responder(
            self._clients, response=config.response, fail_mode=config.revocation_fail_mode
        )
        self._recorder = Recorder(
            ledger=self.ledger,
            violations=violations,
            reports=reports,
            violation_wake=self.violation_wake,
            report_wake=self.report_wake,
            responder=self._responder,
        )
        self._subscriptions: list[EventSubscription] = []
        self._last_counts = (0, 0)
        self.watch: WatchHook | None = None  # the inotify watch while run() runs
        # Durable, so a restart (or a crash loop) does not reset the grace period.
        self._pending_clock = PendingClock.open(config.state_dir / PENDING_FILE)

    # -- setup ------------------------------------------------------------

    def register(self) -> str:
        """Register, pin the server's keys (or check its set against the pins), build the sweeper.

        Raises:
            Unauthorized: the token was refused.
            ConfigError: nothing is pinned and the server's key set cannot be.
            Unavailable: the server is unreachable.
        """
        registration = self._server.register(
            hostname=socket.gethostname(),
            mode=self.config.mode,
            version=AGENT_VERSION,
            namespaces=self.config.namespaces,
        )
        self._keys_polled_at = self._clock()
        problem = pin_keys(self._server, self.pins)
        if problem is None:
            self._note_key_anomaly(None)
        else:
            self._note_key_anomaly(problem.message, refused=problem.refused)
        pinned = self.pins.pins
        self._keys = pinned.keys if pinned is not None else ()
        verifier = pinned_verifier(self._keys)
        budget = Budget(self.config.budget)
        self._attestations = ServerAttestations(
            self._server,
            verifier,
            cache=self._cache,
            clock=self._clock,
            refresh_seconds=self.config.attestation_refresh,
            keyless=self._keyless,
            refresh_keys=self.refresh_keys,
        )
        self._sweeper = Sweeper(
            attestations=self._attestations,
            layers=LayerChecker(full_rehash_every=self.config.full_rehash_every, budget=budget),
            upper=UpperChecker(full_rehash_every=self.config.full_rehash_every, budget=budget),
            pending_grace=self.config.pending_grace,
            pending_clock=self._pending_clock,
        )
        if self._follower_factory is not None:
            # A re-registration keeps the follower (its cursor) and re-pins keys.
            if self.follower is None:
                self.follower = self._follower_factory(trusted_keys(self._keys))
            else:
                self.follower.update_keys(trusted_keys(self._keys))
            # The set loaded from disk applies before the first poll answers.
            self.apply_revocations(self.follower.revset)
        self.agent_id = registration.agent_id
        log.info(
            "registered",
            extra={
                "agent_id": registration.agent_id,
                "keys": [k.keyid for k in self._keys if k.status != "revoked"],
            },
        )
        return registration.agent_id

    def apply_revocations(self, revocations: RevocationSet | None) -> None:
        """Verify with this revocation snapshot from now on (the feed's consumer calls it).

        Raises:
            ConfigError: :meth:`register` was not called.
        """
        if self._attestations is None:
            raise ConfigError("register() must succeed before revocations apply")
        self._attestations.replace_verifier(pinned_verifier(self._keys, revocations=revocations))

    def poll_keys(self) -> bool:
        """Fetch the server's key set and pin it if a pinned key signed it; True if it changed.

        A refused set keeps the pins, is logged and noted in every container's
        history; a fetch failure is logged. Neither raises.
        """
        if self._attestations is None:
            return False
        self._keys_polled_at = self._clock()
        try:
            offer = self.pins.offer(self._server.key_set())
        except Error as e:
            log.warning("key set poll failed", extra={"error": e.message})
            return False
        if offer.outcome == "refused":
            self._note_key_anomaly(offer.reason, refused=True)
            return False
        self._note_key_anomaly(None)
        if offer.reason is not None:  # accepted, but not saved
            log.error("pinned keys not saved", extra={"error": offer.reason})
        if not offer.changed:
            return False
        pinned = self.pins.pins
        self._keys = pinned.keys if pinned is not None else ()
        if self.follower is not None:
            self.follower.update_keys(trusted_keys(self._keys))
        self.apply_revocations(self.follower.revset if self.follower is not None else None)
        log.info(
            "key set pinned",
            extra={"version": offer.version, "keys": [k.keyid for k in self._keys]},
        )
        return True

    def refresh_keys(self, since: float) -> bool:
        """Poll the key set unless a poll began after ``since``; True if the keys changed.

        An attestation signed by a key the pins do not know may come from a
        rotation the periodic poll has not seen yet: it is judged again with
        the new keys before it counts as a bad signature. A poll that began
        after the envelope was fetched already knew every key that signed it.
        """
        if self._keys_polled_at is not None and self._keys_polled_at > since:
            return False
        return self.poll_keys()

    def _note_key_anomaly(self, problem: str | None, *, refused: bool = False) -> None:
        # Noted once when it begins, like a revocation feed anomaly.
        if problem is not None and problem != self.key_anomaly:
            log.error("server key set not accepted", extra={"error": problem})
            now = self._wall()
            if refused:
                self._recorder.spool_trust_anomaly(problem, now)
            self._recorder.note_error(problem, now)
        elif problem is None and self.key_anomaly is not None:
            log.info("server key set accepted again")
        self.key_anomaly = problem

    def poll_revocations(self) -> PollResult | None:
        """Poll the revocation feed once and apply what changed (None: no feed followed).

        Raises:
            ConfigError: :meth:`register` was not called.
        """
        if self.follower is None:
            return None
        result = self.follower.poll()
        if result.changed:
            self.apply_revocations(result.revset)
            self.full_wake.set()  # every layer is re-verified, not just a watch's few
            log.info("revocations applied", extra={"revocations": len(result.revset)})
        # Noted once when an anomaly begins (a stale feed's text changes with
        # every poll, and the follower logs each one already).
        if result.anomaly is not None and self.feed_anomaly is None:
            log.warning("revocation feed anomaly", extra={"anomaly": result.anomaly})
            self._recorder.note_error(f"revocation feed: {result.anomaly}", self._wall())
        elif result.anomaly is None and self.feed_anomaly is not None:
            log.info("revocation feed recovered")
        self.feed_anomaly = result.anomaly
        return result

    # -- one step ---------------------------------------------------------

    def sweep_once(self, changed: Collection[Path] | None = None) -> SweepResult:
        """Inventory, sweep, spool new violations, respond, report, finalize.

        Args:
            changed: None for a full sweep. Else the directories the watch saw
                change: only the containers using one are checked (a partial
                sweep, :meth:`Sweeper.sweep`); other containers' findings
                stand, nothing is finalized and the fail-mode baseline is kept.

        Raises:
            ConfigError: :meth:`register` was not called.
            UpstreamError: containerd could not list a namespace.
        """
        if self._sweeper is None:
            raise ConfigError("register() must succeed before sweeping")
        now = self._wall()
        tracked = self._containers.inventory(self.ledger.image_digests)
        listed = {(c.namespace, c.id) for c in tracked}
        live, ended = self._containers.split(tracked, listed)
        self.ledger.forget_absent(listed)
        if changed is not None:
            result = self._sweeper.sweep(live, now=now, changed=changed)
            self._recorder.record_all(result, now)
            return result
        self._responder.new_containers(live, anomalous=self.feed_anomaly is not None)
        self._responder.retry(live, listed)
        result = self._sweeper.sweep(live, now=now)
        self._recorder.record_all(result, now)
        gone = [k for k in self.ledger.keys() if k not in listed]
        for key in ended + gone:
            self._finalize(key, now)
        self._last_counts = (len(live), len({x.digest for c in live for x in c.layers}))
        return result

    def _finalize(self, key: Key, now: datetime) -> None:
        namespace, container_id = key
        self._recorder.finalize(namespace, container_id, now)
        self._containers.finalized(key)
        log.info(
            "container finalized", extra={"container_id": container_id, "namespace": namespace}
        )

    def deliver_now(self) -> tuple[DrainResult, DrainResult]:
        """Drain both spools once (the background deliverers do this in ``run``)."""
        now = self._clock()
        return self._violation_deliverer.drain(now), self._report_deliverer.drain(now)

    def heartbeat(self) -> None:
        """Tell the server this agent is alive; failures are logged, not raised."""
        if self.agent_id is None:
            return
        containers, layers = self._last_counts
        try:
            self._server.heartbeat(
                self.agent_id,
                containers=containers,
                layers=layers,
                pending_violations=len(self.violations),
            )
        except Error as e:
            log.warning("heartbeat failed", extra={"error": e.message})

    # -- the loop -----------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (SIGTERM in the CLI).

        Raises:
            Unauthorized: the server refused the token.
            ConfigError: the server has no key to pin.
        """
        if not register_until_ok(self.register, stop):
            return
        threads = [
            start_thread("deliver-violations", self._violation_deliverer.run, stop,
                         wake=self.violation_wake),
            start_thread("deliver-reports", self._report_deliverer.run, stop,
                         wake=self.report_wake),
            *(start_thread(f"events-{ns}", watch_events, c, stop, self.wake, self._subscriptions,
                           full=self.full_wake)
              for ns, c in self._clients.items()),
        ]  # fmt: skip
        watch = self.watch = WatchHook(self.config, self.wake)
        next_sweep = next_beat = next_poll = self._clock()
        try:
            while not stop.is_set():
                now = self._clock()
                if now >= next_poll:
                    try:
                        self.poll_revocations()
                    except Error as e:
                        log.error("revocation poll failed", extra={"error": e.message})
                    next_poll = self._clock() + self.config.revocation_poll_interval
                if self.wake.is_set() or now >= next_sweep:
                    if self.wake.is_set() and not watch.settled():
                        stop.wait(_DEBOUNCE)
                    self.wake.clear()
                    full = now >= next_sweep or self.full_wake.is_set()
                    self.full_wake.clear()
                    if logged_sweep(self.sweep_once, watch, full=full, clock=self._clock):
                        # Only a full sweep (or a failed one that was to be
                        # full) stands in for the interval's.
                        next_sweep = self._clock() + self.config.interval
                if now >= next_beat:
                    self.heartbeat()
                    self.poll_keys()  # a rotation reaches the agent within one beat
                    next_beat = self._clock() + self.config.heartbeat_interval
                # Short waits: ``stop`` is another Event, and a signal handler
                # can only set it, not this one.
                due = min(next_sweep, next_beat, next_poll) - self._clock()
                self.wake.wait(min(_STOP_POLL, max(0.0, due)))
        finally:
            watch.close()
            stop.set()
            self.violation_wake.set()
            self.report_wake.set()
            for sub in self._subscriptions:
                sub.close()
            for thread in threads:
                thread.join(timeout=5)
