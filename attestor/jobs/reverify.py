# SPDX-License-Identifier: Apache-2.0
"""Re-verification sweeps: re-check stored attestations and update their status.

Enqueued after a key or policy revocation (scope ``key`` / ``policy``) and
periodically (scope ``all``): on rq through ``Queue.enqueue_in`` (run the worker
with ``--with-scheduler``), without Redis through :class:`SweepTimer`. Either
way :func:`submit_periodic_sweep` inserts the job row only when no periodic
sweep is unfinished or younger than 0.9 period, under a lock shared by every
process on the database: ``serve --workers N`` and replicas sweep once a period.

Each ``valid`` attestation in scope is checked, cheapest first:
1. the revocation set (server-side meta: id, image, recorded issue time);
2. a key row revoked through the keys API -> a key revocation is recorded;
3. the verification core (:class:`attestor.verify.Verifier`) on the stored
   envelope with every server key and the revocation set;
4. for a policy whose loaded version differs from the recorded one, the
   current policy against the attestation's image.
Whatever fails 3 or 4 gets an attestation revocation (actor
``system:reverify``), so history, statuses and the agent feed agree. A policy
that is no longer loaded is skipped, never mass-revoked: an emptied policy
directory is an operator mistake, and revocation cannot be undone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import ConfigError, Error, InvalidInput, VerificationError
from attestor.policy import PolicySet, evaluate, load_policies
from attestor.revocation import AttestationTarget, RevocationSet
from attestor.store import jobs as job_store
from attestor.store import revocations as revocation_store
from attestor.store import signing_keys
from attestor.store.revocations import StoredAttestation
from attestor.verify import TrustedKey, Verifier

if TYPE_CHECKING:  # the task registry imports this module; avoid the cycle at run time
    from attestor.jobs.runner import JobRunner
    from attestor.jobs.tasks import TaskContext

__all__ = [
    "PERIODIC_JOB_ID",
    "PERIODIC_SCHEDULE",
    "SWEEP_ACTOR",
    "SweepTimer",
    "enqueue_policy_sweeps",
    "periodic_sweep_entry",
    "reverify_task",
    "schedule_periodic_sweep",
    "submit_periodic_sweep",
]

log = logging.getLogger(__name__)

SWEEP_ACTOR: Final = "system:reverify"
#: Prefix of the scheduled rq job id; the slot number makes one schedule per slot.
PERIODIC_JOB_ID: Final = "attestor-reverify-periodic"
#: ``jobs.schedule`` of periodic sweeps (the rows the once-a-period check reads).
PERIODIC_SCHEDULE: Final = "reverify-periodic"
#: Default period of the sweep.
SWEEP_INTERVAL: Final = timedelta(hours=1)
#: A periodic sweep is submitted when the last one is older than this share of the period.
_MIN_GAP: Final = 0.9
_BATCH: Final = 200
_SCOPES: Final = ("all", "key", "policy")


@dataclass(frozen=True)
class _Image:
    registry: str
    repository: str


@dataclass(frozen=True)
class _Decision:
    """What to do with one attestation: flip its status, or record a revocation."""

    item: StoredAttestation
    #: None: the revocation set already covers it; flip the status only.
    new_reason: str | None
    revoke_key: bool = False


def _trusted_keys(session: Session) -> tuple[list[TrustedKey], frozenset[str]]:
    rows = signing_keys.list_keys(session)
    keys = [TrustedKey.from_pem(row.public_key_pem, keyid=row.keyid) for row in rows]
    return keys, frozenset(row.keyid for row in rows if row.status == "revoked")


def _policies(settings_policy_dir: Any) -> PolicySet | None:
    try:
        return load_policies(settings_policy_dir)
    except ConfigError as e:
        log.warning("re-verification: policies not loaded, policy checks skipped: %s", e)
        return None


def _decide(
    item: StoredAttestation,
    *,
    revset: RevocationSet,
    revoked_keys: frozenset[str],
    verifier: Verifier | None,
    policies: PolicySet | None,
) -> _Decision | None:
    meta = item.meta
    if revset.match(meta) is not None:
        return _Decision(item, None)
    if meta.keyid in revoked_keys:
        return _Decision(item, "signing key revoked", revoke_key=True)
    if verifier is None:
        return _Decision(item, "no server key to verify with")
    try:
        verifier.verify_envelope(item.envelope, artifact_digest=meta.layer_digest)
    except VerificationError as e:
        if e.detail.get("revoked"):
            return _Decision(item, None)
        return _Decision(item, f"re-verification failed: {e.message}")
    except InvalidInput as e:
        return _Decision(item, f"re-verification failed: {e.message}")
    if policies is None or meta.policy_id is None or meta.policy_id not in policies.ids:
        return None
    policy = policies.get(meta.policy_id)
    if policy.version == meta.policy_version:
        return None
    decision = evaluate(policies, _Image(item.registry, item.repository), policy_id=meta.policy_id)
    if decision.allowed:
        return None
    return _Decision(
        item,
        f"policy {policy.id} version {policy.version} no longer admits the image: "
        + "; ".join(decision.reasons),
    )


def _apply(session: Session, decision: _Decision, *, now: datetime) -> int:
    from attestor.services import revocation as service

    meta = decision.item.meta
    if meta.attestation_id is None or meta.pae_sha256 is None:
        return 0
    if decision.new_reason is None:
        target = AttestationTarget(meta.attestation_id, meta.pae_sha256)  # type: ignore[arg-type]
        return revocation_store.mark_revoked(session, target)
    if decision.revoke_key and meta.keyid is not None:
        service.on_key_revoked(
            session, meta.keyid, reason=decision.new_reason, actor=SWEEP_ACTOR, now=now
        )
        return 1
    service.create_revocation(
        session,
        target={"kind": "attestation", "attestation_id": meta.attestation_id},
        reason=decision.new_reason[:1000],
        actor=SWEEP_ACTOR,
        now=now,
    )
    return 1


def reverify_task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """Re-verify the ``valid`` attestations in scope and update their status.

    Payload: ``{"scope": "all"}``, ``{"scope": "key", "keyid": K}`` or
    ``{"scope": "policy", "policy_id": P}``.

    Raises:
        InvalidInput: an unknown scope or a missing keyid / policy_id.
    """
    scope = payload.get("scope", "all")
    if scope not in _SCOPES:
        raise InvalidInput(f"scope must be one of {list(_SCOPES)}, got {str(scope)[:40]!r}")
    keyid = payload.get("keyid") if scope == "key" else None
    policy_id = payload.get("policy_id") if scope == "policy" else None
    if scope == "key" and not isinstance(keyid, str):
        raise InvalidInput("a key sweep needs keyid")
    if scope == "policy" and not isinstance(policy_id, str):
        raise InvalidInput("a policy sweep needs policy_id")
    checked = revoked = 0
    after = ""
    while True:
        with context.session_factory() as session:
            revset = revocation_store.current_revocation_set(session)
            keys, revoked_keys = _trusted_keys(session)
            batch = list(
                revocation_store.attestation_metas(
                    session, keyid=keyid, policy_id=policy_id, after=after, limit=_BATCH
                )
            )
        if not batch:
            break
        verifier = Verifier(keys=keys, revocations=revset) if keys else None
        policies = _policies(context.settings.policy_dir) if scope != "key" else None
        decisions = [
            d
            for d in (
                _decide(
                    item,
                    revset=revset,
                    revoked_keys=revoked_keys,
                    verifier=verifier,
                    policies=policies,
                )
                for item in batch
            )
            if d is not None
        ]
        for decision in decisions:
            # One transaction per decision: each new revocation takes the feed lock.
            with context.session_factory.begin() as session:
                revoked += _apply(session, decision, now=context.clock())
        checked += len(batch)
        after = batch[-1].meta.attestation_id or ""
        context.report_progress({"done": checked, "revoked": revoked})
    return {"scope": scope, "checked": checked, "revoked": revoked}


def enqueue_policy_sweeps(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    policies: PolicySet,
    *,
    now: datetime,
) -> list[str]:
    """After (re)loading policies: one ``policy`` sweep per policy whose version changed.

    A policy changed when ``valid`` attestations record another version of a
    policy id that is loaded now. Returns the job ids; a queue outage is logged
    (the periodic sweep covers it).
    """
    from attestor.jobs.runner import submit
    from attestor.services.revocation import REVERIFY_KIND

    with session_factory() as session:
        in_use = revocation_store.policy_versions_in_use(session)
    loaded = {p.id: p.version for p in policies.policies}
    changed = sorted({pid for pid, version in in_use if pid in loaded and loaded[pid] != version})
    jobs: list[str] = []
    for policy_id in changed:
        try:
            job = submit(
                session_factory,
                runner,
                kind=REVERIFY_KIND,
                payload={"scope": "policy", "policy_id": policy_id},
                now=now,
            )
        except Error as e:
            log.warning("policy sweep for %s not enqueued: %s", policy_id, e)
            continue
        jobs.append(job.id)
    return jobs


def submit_periodic_sweep(
    session_factory: sessionmaker[Session],
    runner: JobRunner,
    *,
    now: datetime,
    interval: timedelta,
) -> str | None:
    """Submit the periodic ``all`` sweep unless another process did this period.

    Returns the job id, or None when skipped (a periodic sweep is unfinished or
    younger than 0.9 ``interval``) or when the queue is unreachable (logged; the
    row is marked failed and the next period tries again).
    """
    from attestor.jobs.runner import InlineRunner
    from attestor.services.revocation import REVERIFY_KIND

    payload = {"scope": "all"}
    with session_factory.begin() as session:
        job = job_store.create_scheduled_job(
            session,
            schedule=PERIODIC_SCHEDULE,
            kind=REVERIFY_KIND,
            payload=payload,
            now=now,
            min_gap=interval * _MIN_GAP,
            owner=runner.owner if isinstance(runner, InlineRunner) else None,
        )
    if job is None:
        return None
    try:
        runner.enqueue(REVERIFY_KIND, payload, job_id=job.id)
    except Error as e:
        log.warning("periodic re-verification sweep not enqueued: %s", e)
        with session_factory.begin() as session:
            job_store.update_job(
                session, job.id, status="failed", error=f"{type(e).__name__}: {e.message}", now=now
            )
        return None
    return job.id


class SweepTimer:
    """The periodic sweep without Redis: a daemon thread that submits one job per interval.

    Every server process runs one; it checks ten times per interval and
    :func:`submit_periodic_sweep` lets one submission through per interval
    across them all (and a restart does not push the next sweep back).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        runner: JobRunner,
        *,
        clock: Callable[[], datetime],
        interval: timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._factory = session_factory
        self._runner = runner
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Ids of the jobs this timer submitted (for tests and logs).
        self.submitted: list[str] = []

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="attestor-reverify-timer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval.total_seconds() / 10):
            self.tick()

    def tick(self) -> str | None:
        """Submit the sweep if it is due; database errors are logged (the next tick retries)."""
        try:
            job_id = submit_periodic_sweep(
                self._factory, self._runner, now=self._clock(), interval=self._interval
            )
        except (Error, SQLAlchemyError) as e:
            log.warning("periodic re-verification sweep not submitted: %s", e)
            return None
        if job_id is not None:
            self.submitted.append(job_id)
        return job_id

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def schedule_periodic_sweep(queue: Any, *, interval: timedelta = SWEEP_INTERVAL) -> None:
    """Schedule the next periodic sweep on an rq ``Queue`` (needs ``--with-scheduler``).

    The job id names the time slot it runs in, so however often this is called
    (every server start, every run) one sweep is pending per slot.

    Raises:
        Unavailable: Redis cannot be reached.
    """
    from redis.exceptions import RedisError

    from attestor.errors import Unavailable

    seconds = max(1, int(interval.total_seconds()))
    slot = (int(time.time()) + seconds) // seconds
    try:
        queue.enqueue_in(
            interval,
            periodic_sweep_entry,
            seconds,
            job_id=f"{PERIODIC_JOB_ID}-{seconds}-{slot}",
            job_timeout=600,
            result_ttl=0,
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as e:
        raise Unavailable(f"job queue unreachable: {type(e).__name__}") from e


def periodic_sweep_entry(interval_s: int) -> None:
    """What rq's scheduler runs: submit a sweep job, then schedule the next one.

    Raises:
        ConfigError: ``REDIS_URL`` is not set, so there is no rq queue to use.
        Unavailable: Redis is unreachable.
    """
    from attestor.config import load_settings
    from attestor.jobs.runner import RQRunner, utc_now
    from attestor.store.db import make_engine, make_session_factory

    settings = load_settings(os.environ)
    if settings.redis_url is None:
        raise ConfigError("the periodic sweep runs on rq, which needs REDIS_URL")
    engine = make_engine(settings.database_url)
    try:
        runner = RQRunner(settings.redis_url)
        submit_periodic_sweep(
            make_session_factory(engine),
            runner,
            now=utc_now(),
            interval=timedelta(seconds=interval_s),
        )
        schedule_periodic_sweep(runner.queue, interval=timedelta(seconds=interval_s))
    finally:
        engine.dispose()
