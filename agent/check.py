# SPDX-License-Identifier: Apache-2.0
"""``attestor-agent check --once``: one full sweep and a JSON report.

:func:`check_once` is the whole command minus the CLI: register, pin the
server's keys, resolve every covered container, verify each layer's
attestation and compare every layer with its manifest (full re-hash).
:func:`run_check` is the same sweep for any :class:`AttestationSource` (tests
on real containerd use attested manifests they computed themselves).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from agent.cache import AttestationCache
from agent.config import AgentConfig
from agent.integrity.attestation import (
    AttestationServer,
    AttestationSource,
    KeylessTrust,
    ServerAttestations,
)
from agent.integrity.drift import UpperChecker
from agent.integrity.inventory import ContainerFilter, InventoryClient, list_tracked
from agent.integrity.layers import LayerChecker
from agent.integrity.pending import PENDING_FILE, PendingClock
from agent.integrity.sweep import ContainerResult, Sweeper, SweepResult
from agent.report import format_time
from agent.revocation import FeedFollower
from agent.server import Registration, ServerClient
from agent.trust import KeyPins, PublicKeyEntry, trusted_keys
from attestor.errors import ConfigError, Error
from attestor.revocation import RevocationSet
from attestor.verify import TrustedKey, Verifier

__all__ = [
    "AGENT_VERSION",
    "CheckReport",
    "FollowerFactory",
    "KeyProblem",
    "RegisteringServer",
    "check_once",
    "feed_follower",
    "pin_keys",
    "pinned_verifier",
    "prepare_state_dir",
    "run_check",
    "trusted_keys",
]

#: Builds the revocation feed follower from the keys pinned at registration.
FollowerFactory = Callable[[Sequence[TrustedKey]], FeedFollower]

AGENT_VERSION = "0.1.0"
EXIT_CLEAN = 0
EXIT_VIOLATIONS = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class CheckReport:
    """The result of one check; :meth:`to_json` is what ``check --once`` prints."""

    sweep: SweepResult
    errors: tuple[str, ...]
    agent_id: str | None = None

    @property
    def exit_code(self) -> int:
        """1 with violations, else 2 with errors (or unverified layers), else 0."""
        if self.sweep.violations:
            return EXIT_VIOLATIONS
        return EXIT_ERROR if self.errors else EXIT_CLEAN

    def to_json(self) -> dict[str, Any]:
        """Containers with their layers and status, violations, errors."""
        violations = [v.to_dict() for v in self.sweep.violations]
        return {
            "checked_at": format_time(self.sweep.checked_at),
            "agent_id": self.agent_id,
            "result": ("violations", "clean", "error")[
                [EXIT_VIOLATIONS, EXIT_CLEAN, EXIT_ERROR].index(self.exit_code)
            ],
            "containers": [_container_json(c) for c in self.sweep.containers],
            "violations": violations,
            "errors": list(self.errors),
        }


def _container_json(result: ContainerResult) -> dict[str, Any]:
    c = result.container
    return {
        "namespace": c.namespace,
        "id": c.id,
        "image": {"name": c.image_name, "digest": c.image_digest},
        "task": c.task_status.name.lower() if c.task_status is not None else None,
        "layers": [
            {
                "index": r.layer.index,
                "digest": r.layer.digest,
                "diff_id": r.layer.diff_id,
                "chain_id": r.layer.chain_id,
                "status": r.attestation.status,
                "attestation_id": r.attestation.attestation_id,
                "keyid": r.attestation.keyid,
                "reason": r.attestation.reason,
                "files_checked": r.check.files_checked if r.check else 0,
                "changes": len(r.check.changes) if r.check else 0,
                "full_rehash": r.check.full_rehash if r.check else False,
                "error": r.check.error if r.check else None,
                "unscannable": len(r.check.unscannable) if r.check else 0,
            }
            for r in result.layers
        ],
        "upperdir": {
            "path": str(result.upper.upperdir) if result.upper.upperdir else None,
            "files_checked": result.upper.files_checked,
            "drift": len(result.upper.findings),
            "error": result.upper.error,
            "unscannable": len(result.upper.unscannable),
        },
        "violations": len(result.violations),
    }


def run_check(
    clients: Sequence[InventoryClient],
    attestations: AttestationSource,
    *,
    now: datetime,
    selector: ContainerFilter | None = None,
    checker: LayerChecker | None = None,
    agent_id: str | None = None,
    pending_grace: float | None = None,
    pending_clock: PendingClock | None = None,
) -> CheckReport:
    """Resolve the covered containers of every namespace and sweep them once.

    Args:
        clients: one containerd client per namespace.
        attestations: where attested manifests come from.
        now: stamped on the checks and violations.
        selector: sidecar filter; None covers every container.
        checker: lower-layer checker (default: full re-hash, no budget).
        agent_id: shown in the report.
        pending_grace: a pending layer is an ``unverified`` violation when
            this is 0 (one sweep: no layer waits longer), or when the layer
            was first seen pending (by ``pending_clock``) at least this long
            ago; else, or None, it is an error of the report.
        pending_clock: first sightings of pending layers, kept between runs
            (``check_once`` keeps it in the state dir); default: this run only.

    Raises:
        UpstreamError: containerd could not list containers.
    """
    tracked = []
    errors: list[str] = []
    for client in clients:
        found, problems = list_tracked(client, selector=selector)
        tracked.extend(found)
        errors.extend(problems)
    sweeper = Sweeper(
        attestations=attestations,
        layers=checker or LayerChecker(full_rehash_every=1),
        upper=UpperChecker(full_rehash_every=1),
        pending_grace=pending_grace,
        pending_clock=pending_clock,
    )
    sweep = sweeper.sweep(tracked, now=now)
    errors.extend(sweep.errors)
    for result in sweep.containers:
        for layer in result.layers:
            if layer.attestation.status == "pending":
                errors.append(
                    f"container {result.container.id} layer {layer.layer.digest} not verified: "
                    f"{layer.attestation.reason}"
                )
    return CheckReport(sweep, tuple(errors), agent_id)


def pinned_verifier(
    keys: Sequence[PublicKeyEntry], *, revocations: RevocationSet | None = None
) -> Verifier:
    """A verifier over the pinned server keys that are not revoked.

    Args:
        keys: the pinned keys (:class:`agent.trust.KeyPins`).
        revocations: the revocation snapshot from the feed, if any.

    Raises:
        ConfigError: the server published no usable key.
    """
    trusted = trusted_keys(keys)
    if not trusted:
        raise ConfigError("the server published no active signing key to pin")
    return Verifier(keys=trusted, revocations=revocations)


def feed_follower(
    server: ServerClient, config: AgentConfig, *, state_dir: Path | None = None
) -> FollowerFactory:
    """The factory of the follower of ``server``'s revocation feed.

    Args:
        server: the agent's server client.
        config: gives ``revocation_max_age`` and the state directory.
        state_dir: overrides ``config.revocation_dir`` (``check`` without
            ``--state-dir`` keeps the feed state in a temporary directory).
    """

    def make(keys: Sequence[TrustedKey]) -> FeedFollower:
        return FeedFollower(
            server,
            keys,
            state_dir or config.revocation_dir,
            max_age=timedelta(seconds=config.revocation_max_age),
            clock=lambda: datetime.now(UTC),
        )

    return make


def prepare_state_dir(path: Path) -> None:
    """Create the state directory (mode 0700) unless it exists.

    For the CLI's ``run`` and ``check --state-dir``: an unusable state
    directory is then a ``ConfigError`` (one line, exit 2), like an unusable
    spool or cache directory, instead of an ``OSError`` traceback.

    Raises:
        ConfigError: it cannot be created (a parent is a file, no permission,
            read-only file system) or it is not a directory.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ConfigError(f"state directory {path} unusable: {e.strerror}") from e


class RegisteringServer(AttestationServer, Protocol):
    """The server calls ``check`` makes (a :class:`agent.server.ServerClient`)."""

    def register(
        self,
        *,
        hostname: str,
        mode: Literal["node", "sidecar"],
        version: str,
        namespaces: Sequence[str],
    ) -> Registration: ...

    def key_set(self) -> bytes: ...


@dataclass(frozen=True)
class KeyProblem:
    """Why the server's key set is not (durably) pinned; ``refused``: it was judged and refused."""

    message: str
    refused: bool


def pin_keys(server: RegisteringServer, pins: KeyPins) -> KeyProblem | None:
    """Offer the server's signed key set to ``pins``; returns the problem, if any.

    A refused set, or one that cannot be fetched while keys are already
    pinned, leaves the pins as they were and is returned as a problem (as is
    an accepted set that could not be saved).

    Raises:
        ConfigError: nothing is pinned and the server's set cannot be pinned.
        Error: nothing is pinned and the set cannot be fetched.
    """
    try:
        offer = pins.offer(server.key_set())
    except Error as e:
        if pins.pins is None:
            raise
        return KeyProblem(f"key set not refreshed: {e.message}", refused=False)
    if pins.pins is None:
        raise ConfigError(f"no server key pinned: {offer.reason}")
    if offer.reason is None:
        return None
    return KeyProblem(offer.reason, refused=offer.outcome == "refused")


def check_once(
    config: AgentConfig,
    *,
    server: RegisteringServer,
    containerd: Sequence[InventoryClient],
    now: datetime,
    clock: Callable[[], float],
    cache: AttestationCache | None = None,
    revocations: FollowerFactory | None = None,
    keyless: KeylessTrust | None = None,
    pins: KeyPins | None = None,
) -> CheckReport:
    """The whole ``check --once``: register, pin keys, poll the revocation feed, one sweep.

    A feed anomaly (stale, a page that failed verification) is an error of
    the report: without a current feed, "not revoked" cannot be shown.

    Args:
        config: the agent configuration.
        server: a :class:`agent.server.ServerClient`.
        containerd: one client per namespace in ``config.namespaces``.
        now: stamped on the checks and violations.
        clock: monotonic seconds (attestation request back-off).
        cache: the verified cache (optional).
        revocations: builds the feed follower (None: revocations are not
            followed; the CLI always passes one).
        keyless: pinned keyless trust (None: keyless attestations are bad-signature).
        pins: the pinned server keys (None: pinned in memory for this check
            only, trusting the server's set on first use).

    Raises:
        Error: registration failed (unreachable server, refused token, no keys).
        UpstreamError: containerd failed.
    """
    registration = server.register(
        hostname=socket.gethostname(),
        mode=config.mode,
        version=AGENT_VERSION,
        namespaces=config.namespaces,
    )
    pins = pins if pins is not None else KeyPins(None)
    key_problem = pin_keys(server, pins)
    keys = pins.pins.keys if pins.pins is not None else ()
    anomaly = None
    revset = None
    if revocations is not None:
        polled = revocations(trusted_keys(keys)).poll()
        anomaly, revset = polled.anomaly, polled.revset
    verifier = pinned_verifier(keys, revocations=revset)
    attestations = ServerAttestations(server, verifier, cache=cache, clock=clock, keyless=keyless)
    report = run_check(
        containerd,
        attestations,
        now=now,
        selector=config.selector,
        agent_id=registration.agent_id,
        pending_grace=config.pending_grace,
        # Kept in the state dir: checks run again and again (cron, a
        # readiness probe) count a pending layer's grace from its first one.
        pending_clock=PendingClock.open(config.state_dir / PENDING_FILE),
    )
    problems = [] if key_problem is None else [key_problem.message]
    if anomaly is not None:
        problems.append(f"revocation feed: {anomaly}")
    if not problems:
        return report
    return replace(report, errors=(*report.errors, *problems))
