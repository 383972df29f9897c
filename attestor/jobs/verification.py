# SPDX-License-Identifier: Apache-2.0
"""Bulk verification on workers: chunk dispatch, the rq chunk job, the Redis cache.

With Redis each chunk (default 500 distinct items) is one rq job that carries
its items, so per-job overhead is amortized and the items are stored once (in
Redis, not in the database). Chunk jobs run on :class:`ChunkWorker`, rq's
non-forking ``SimpleWorker``: rq's ``Worker`` forks a work horse per job,
which costs more than verifying a small chunk and discards the per-process
engine, Redis connection and verifier setup. A chunk killed with its worker
stays in rq's StartedJobRegistry until its heartbeat expires (the chunk
timeout plus a short grace), then any worker's maintenance pass retries it
(``Retry``). Retried chunks upsert the same ``(job_id, index)`` rows.

Without Redis the ``verify`` task runs the same :func:`run_chunk` in-process.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry, SimpleWorker
from rq.job import Job
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, load_settings
from attestor.errors import ConfigError, Unavailable
from attestor.services.bulk_verify import (
    JOB_KIND,
    BulkLimits,
    NullCache,
    Outcome,
    results_url,
    run_chunk,
)
from attestor.store import jobs as job_store
from attestor.verify.bundle import BundleVerifier
from attestor.verify.trust import load_client_trust_config, public_good

if TYPE_CHECKING:
    from attestor.jobs.tasks import TaskContext

__all__ = [
    "CHUNK_FAILURE_TTL_S",
    "ChunkJob",
    "ChunkWorker",
    "InlineDispatcher",
    "keyless_bundle_verifier",
    "RQDispatcher",
    "RedisResultCache",
    "on_chunk_failure",
    "rq_verify_chunk",
    "verify_task",
]

log = logging.getLogger(__name__)

CACHE_PREFIX = "attestor:vcache:"
# SET KEYS[i] ARGV[i+1] EX ARGV[1], for every i.
_SET_MANY_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""
#: Seconds added to a chunk's timeout before its heartbeat expires.
HEARTBEAT_GRACE_S = 2
CHUNK_RESULT_TTL_S = 600
CHUNK_FAILURE_TTL_S = 7 * 24 * 3600


class RedisResultCache:
    """Outcomes in Redis under ``attestor:vcache:<item>:<trust fingerprint>`` with a TTL."""

    def __init__(self, connection: Redis) -> None:
        self._redis = connection
        self._set_many = connection.register_script(_SET_MANY_LUA)

    def get_many(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """Cached outcomes; a Redis error degrades to "nothing cached"."""
        if not keys:
            return {}
        try:
            values = self._redis.mget([CACHE_PREFIX + k for k in keys])
        except RedisError as e:
            log.warning("verification cache unavailable: %s", type(e).__name__)
            return {}
        return {
            k: Outcome.from_json(json.loads(v))
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    def put_many(self, outcomes: Mapping[str, Outcome], *, ttl_s: int) -> None:
        """Store outcomes; a Redis error only loses the cache entries."""
        if not outcomes:
            return
        keys = [CACHE_PREFIX + k for k in outcomes]
        values = [json.dumps(o.to_json()) for o in outcomes.values()]
        try:
            # One script call per chunk: redis-py packs each pipelined SET in
            # Python (~50 us per item measured), one command with many arguments
            # costs a fraction of that.
            self._set_many(keys=keys, args=[ttl_s, *values])
        except RedisError as e:
            log.warning("verification cache unavailable: %s", type(e).__name__)


class RQDispatcher:
    """Enqueues one rq job per chunk on the queue ``attestor worker`` serves."""

    def __init__(self, queue: Queue, limits: BulkLimits) -> None:
        self._queue = queue
        self._limits = limits

    def dispatch(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """Enqueue every chunk in one Redis round trip.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        # interval 0: requeue at once, so no rq scheduler process is needed.
        retries = self._limits.chunk_retries
        retry = Retry(max=retries, interval=0) if retries else None
        specs = [
            Queue.prepare_data(
                rq_verify_chunk,
                args=(job_id, [dict(u) for u in chunk], _limits_json(self._limits)),
                job_id=f"{job_id}_{n}",
                # rq's default description is the repr of the call: the whole chunk.
                description=f"verify chunk {n} of job {job_id}",
                timeout=self._limits.chunk_timeout_s,
                result_ttl=CHUNK_RESULT_TTL_S,
                failure_ttl=CHUNK_FAILURE_TTL_S,
                retry=retry,
                on_failure=Callback(on_chunk_failure),
            )
            for n, chunk in enumerate(chunks)
        ]
        try:
            self._queue.enqueue_many(specs)
        except RedisError as e:
            raise Unavailable(f"job queue unreachable: {type(e).__name__}", retry_after=10) from e


class InlineDispatcher:
    """Hands all chunks to a ``JobRunner`` (the in-process one) as one ``verify`` task."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def dispatch(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """Enqueue the task.

        Raises:
            Unavailable: The runner cannot take it.
        """
        self._runner.enqueue(JOB_KIND, {"chunks": [list(c) for c in chunks]}, job_id=job_id)


def _limits_json(limits: BulkLimits) -> dict[str, int]:
    return {"cache_ttl_s": limits.cache_ttl_s}


def keyless_bundle_verifier(settings: Settings) -> BundleVerifier | None:
    """The verifier of keyless bundles, when the server signs keyless (else ``None``).

    Raises:
        ConfigError: The configured trust config cannot be read.
    """
    if settings.signing_mode != "keyless":
        return None
    return _keyless_verifier(settings.keyless_instance, settings.keyless_trust_config)


@functools.cache
def _keyless_verifier(instance: str, trust_config: Path | None) -> BundleVerifier:
    # Built once per process: loading the trust root parses certificates.
    if instance == "custom":
        if trust_config is None:
            raise ConfigError("keyless instance 'custom' needs a trust config file")
        return BundleVerifier(load_client_trust_config(trust_config))
    return BundleVerifier(public_good("staging" if instance == "staging" else "production"))


def verify_task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """The in-process ``verify`` task: every chunk, one after another."""
    limits = BulkLimits()
    keyless = keyless_bundle_verifier(context.settings)
    for chunk in payload["chunks"]:
        run_chunk(
            context.session_factory,
            context.job_id,
            chunk,
            cache=NullCache(),
            limits=limits,
            now=context.clock,
            keyless=keyless,
        )
    return {"results_url": results_url(context.job_id)}


# One engine and one Redis connection per worker process: SimpleWorker runs
# every chunk in this process, so they are built once, not per chunk.
_PROCESS: dict[str, Any] = {}


def _process_state() -> tuple[Settings, sessionmaker[Session], Redis | None]:
    if "settings" not in _PROCESS:
        from attestor.store.db import make_engine, make_session_factory

        settings = load_settings(os.environ)
        engine: Engine = make_engine(settings.database_url)
        _PROCESS["settings"] = settings
        _PROCESS["factory"] = make_session_factory(engine)
        _PROCESS["redis"] = Redis.from_url(settings.redis_url) if settings.redis_url else None
    return _PROCESS["settings"], _PROCESS["factory"], _PROCESS["redis"]


def rq_verify_chunk(job_id: str, units: list[dict[str, Any]], options: dict[str, int]) -> int:
    """rq entry point of one chunk; returns the number of results recorded so far."""
    from attestor.jobs.runner import utc_now

    settings, factory, connection = _process_state()
    cache = RedisResultCache(connection) if connection is not None else NullCache()
    limits = BulkLimits(cache_ttl_s=int(options.get("cache_ttl_s", 3600)))
    counts = run_chunk(
        factory,
        job_id,
        units,
        cache=cache,
        limits=limits,
        now=utc_now,
        keyless=keyless_bundle_verifier(settings),
    )
    return counts.done


def on_chunk_failure(job: Job, connection: Any, *exc_info: Any) -> None:
    """rq failure callback: fail the bulk job once a chunk has no retries left."""
    from attestor.jobs.runner import utc_now

    if job.retries_left:
        return
    parent = str(job.args[0])
    _, factory, _ = _process_state()
    with factory.begin() as session:
        row = job_store.get_job(session, parent)
        if row.status in ("finished", "failed"):
            return
        job_store.update_job(
            session, parent, status="failed", error=f"chunk {job.id} failed", now=utc_now()
        )


class ChunkJob(Job):
    """A job that does not rewrite its stored payload once fetched from Redis.

    rq's ``Job.save`` zlib-compresses and resends the whole ``data`` field on
    every status change (start, success), ~10 ms per 500-item chunk. A fetched
    job's payload is already stored and never changes on a worker, and HSET
    leaves fields it is not given untouched, so it is omitted.
    """

    _payload_stored = False
    _omit_payload = False

    @property
    def data(self) -> bytes:
        """The serialized call; empty while :meth:`to_dict` leaves it out."""
        if self._omit_payload:
            return b""
        return bytes(Job.data.fget(self))  # type: ignore[attr-defined]

    @data.setter
    def data(self, value: bytes) -> None:
        Job.data.fset(self, value)  # type: ignore[attr-defined]

    def restore(self, raw_data: Any) -> Any:
        """Load from Redis and remember that the payload is stored there."""
        restored = super().restore(raw_data)
        self._payload_stored = True
        return restored

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:
        """rq's mapping, without ``data`` (and without compressing it) once stored."""
        if not self._payload_stored:
            return dict(super().to_dict(include_meta=include_meta, include_result=include_result))
        self._omit_payload = True
        try:
            mapping = dict(super().to_dict(include_meta, include_result))
        finally:
            self._omit_payload = False
        del mapping["data"]
        return mapping


class ChunkWorker(SimpleWorker):
    """A non-forking worker whose jobs are considered dead soon after their timeout.

    rq's SimpleWorker keeps a job in StartedJobRegistry for ``timeout + 60`` s
    after its last heartbeat. It enforces ``job_timeout`` itself (SIGALRM), so a
    live worker never holds a chunk past it; a short grace is enough and lets a
    killed worker's chunk be retried within seconds instead of a minute.
    """

    job_class = ChunkJob

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least every maintenance interval, even when idle.

        rq blocks on the queue for ``worker_ttl - 15`` s (405 s by default) and
        only checks for abandoned jobs between waits; an idle worker would
        otherwise leave a dead worker's chunk unretried for minutes.
        """
        return max(1, min(self.worker_ttl - 15, int(self.maintenance_interval)))

    def get_heartbeat_ttl(self, job: Job) -> int:
        """The chunk's timeout plus a short grace."""
        if job.timeout is None or job.timeout <= 0:
            return int(super().get_heartbeat_ttl(job))
        return int(job.timeout) + HEARTBEAT_GRACE_S
