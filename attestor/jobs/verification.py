# SPDX-License-Identifier: Apache-2.0
"""Bulk verification on workers: chunk dispatch, the rq chunk job, the Redis cache.

With Redis each chunk (default 2,000 distinct items) is one rq job, so per-job
overhead is amortized. The chunk's items are stored once, as plain JSON under
their own Redis key (``attestor:chunk:<chunk id>``), not in the rq job: rq
zlib-compresses a job's payload when it is enqueued and decompresses it when
it is fetched, which cost more than the rest of the queueing for 500
envelopes. The keys are written in the same MULTI/EXEC as the jobs and deleted
when the bulk job finishes. Chunk jobs run on :class:`ChunkWorker`, rq's
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
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry, SimpleWorker
from rq.job import Job
from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, load_settings
from attestor.errors import ConfigError, Unavailable
from attestor.jobqueue import TaskContext, utc_now
from attestor.jobs.worker_state import WorkerState, build_worker_state, installed_worker_state
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

__all__ = [
    "CHUNK_FAILURE_TTL_S",
    "ChunkWorker",
    "chunk_id",
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
CHUNK_PREFIX = "attestor:chunk:"
# ARGV[2] is a JSON array [key1, value1, key2, value2, ...]; SET each pair EX ARGV[1].
# One argument, not one per key and value: redis-py packs each argument in
# Python, which cost more than the SETs (and than MGET's). The keys are not
# declared in KEYS, which only Redis Cluster needs; a chunk's keys span slots,
# so neither MGET nor these scripts would run there as they are.
_SET_PAIRS_LUA = """
local kv = cjson.decode(ARGV[2])
for i = 1, #kv, 2 do
  redis.call('SET', kv[i], kv[i + 1], 'EX', ARGV[1])
end
return #kv / 2
"""
# ARGV[1] is a JSON array of keys; their values in order (false when absent),
# as one JSON array: redis-py parses a multi-bulk reply element by element in
# Python (~2 us each, for a chunk of mostly absent keys), one string in C.
_GET_MANY_LUA = """
local keys = cjson.decode(ARGV[1])
local values = {}
for i, key in ipairs(keys) do
  values[i] = redis.call('GET', key)
end
return cjson.encode(values)
"""
#: Seconds added to a chunk's timeout before its heartbeat expires.
HEARTBEAT_GRACE_S = 2
CHUNK_RESULT_TTL_S = 600
CHUNK_FAILURE_TTL_S = 7 * 24 * 3600


class RedisResultCache:
    """Outcomes in Redis under ``attestor:vcache:<item>:<trust fingerprint>`` with a TTL."""

    def __init__(self, connection: Redis) -> None:
        self._redis = connection
        self._set_pairs = connection.register_script(_SET_PAIRS_LUA)
        self._get_many = connection.register_script(_GET_MANY_LUA)

    def get_many(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """Cached outcomes; a Redis error degrades to "nothing cached"."""
        if not keys:
            return {}
        try:
            reply = self._get_many(keys=[], args=[orjson.dumps([CACHE_PREFIX + k for k in keys])])
        except RedisError as e:
            log.warning("verification cache unavailable: %s", type(e).__name__)
            return {}
        # Each value is what put_many stored: _dumps output, valid UTF-8, which
        # cjson writes as a JSON string (escaping what needs it).
        try:
            values = orjson.loads(reply)
        except orjson.JSONDecodeError:  # not what put_many wrote: verify again
            log.warning("verification cache reply unreadable")
            return {}
        return {
            k: Outcome.from_json(_loads(v.encode()))
            for k, v in zip(keys, values, strict=True)
            if v is not False
        }

    def put_many(self, outcomes: Mapping[str, Outcome], *, ttl_s: int) -> None:
        """Store outcomes; a Redis error only loses the cache entries."""
        if not outcomes:
            return
        pairs: list[str] = []
        for key, outcome in outcomes.items():
            pairs.append(CACHE_PREFIX + key)
            pairs.append(_encoded(outcome))
        try:
            # Every string here is valid UTF-8 (keys are hex, values _dumps output),
            # so orjson writes it and the script's cjson reads it.
            self._set_pairs(keys=[], args=[ttl_s, orjson.dumps(pairs)])
        except RedisError as e:
            log.warning("verification cache unavailable: %s", type(e).__name__)


class RQDispatcher:
    """Enqueues one rq job per chunk on the queue ``attestor worker`` serves."""

    def __init__(self, queue: Queue, limits: BulkLimits) -> None:
        self._queue = queue
        self._limits = limits

    def dispatch(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """Store every chunk's items and enqueue its job, in one MULTI/EXEC.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        # interval 0: requeue at once, so no rq scheduler process is needed.
        retries = self._limits.chunk_retries
        retry = Retry(max=retries, interval=0) if retries else None
        specs = [
            Queue.prepare_data(
                rq_verify_chunk,
                args=(job_id, n, len(chunks), _limits_json(self._limits)),
                job_id=chunk_id(job_id, n),
                description=f"verify chunk {n} of job {job_id}",
                timeout=self._limits.chunk_timeout_s,
                result_ttl=CHUNK_RESULT_TTL_S,
                failure_ttl=CHUNK_FAILURE_TTL_S,
                retry=retry,
                on_failure=Callback(on_chunk_failure),
            )
            for n in range(len(chunks))
        ]
        try:
            with self._queue.connection.pipeline() as pipe:
                for n, chunk in enumerate(chunks):
                    # Kept while a failed chunk can still be retried or inspected.
                    pipe.set(
                        CHUNK_PREFIX + chunk_id(job_id, n),
                        _dumps(list(chunk)),
                        ex=CHUNK_FAILURE_TTL_S,
                    )
                self._queue.enqueue_many(specs, pipeline=pipe)
                pipe.execute()
        except RedisError as e:
            raise Unavailable(f"job queue unreachable: {type(e).__name__}", retry_after=10) from e


# orjson is ~5x faster than json for a chunk, but cannot write what Python's
# json can read from a request (integers over 64 bits, lone surrogates), and
# would read such integers back as floats. Those documents go as json, marked.
_JSON_MARK = b"\x00"


def _dumps(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return _JSON_MARK + json.dumps(value, separators=(",", ":")).encode()


def _loads(data: bytes | str) -> Any:
    if isinstance(data, str):  # a connection made with decode_responses=True
        data = data.encode()
    if data.startswith(_JSON_MARK):
        return json.loads(data[1:])
    return orjson.loads(data)


@functools.lru_cache(maxsize=256)
def _encoded(outcome: Outcome) -> str:
    # Most outcomes of a chunk are equal ("verified", or one reason), and an
    # Outcome is frozen: encode each distinct one once.
    return _dumps(outcome.to_json()).decode()


def chunk_id(job_id: str, n: int) -> str:
    """The rq job id of chunk ``n`` of bulk job ``job_id`` (also its items' key)."""
    return f"{job_id}_{n}"


class InlineDispatcher:
    """Hands all chunks to a ``JobRunner`` (the in-process one) as one ``verify`` task."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        #: The in-process runner's owner id: the job row is created with it, so
        #: a crash before the runner claims the row still leaves a reapable job.
        self.owner: str | None = getattr(runner, "owner", None)

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


# An rq worker started without ``attestor worker`` has no installed state. Its
# chunks still share one engine and Redis connection: SimpleWorker runs every
# chunk in this process, and a chunk is too small to pay for an engine each.
_FALLBACK: list[WorkerState] = []


def _process_state() -> tuple[Settings, sessionmaker[Session], Redis | None]:
    state = installed_worker_state()
    if state is None:
        if not _FALLBACK:
            _FALLBACK.append(build_worker_state(load_settings(os.environ)))
        state = _FALLBACK[0]
    return state.settings, state.session_factory, state.redis


#: Read size of the connection that fetches a chunk's items. A chunk of 2,000
#: envelopes is ~4 MB, which redis-py's default 64 KiB reads assemble in Python
#: (~60 recv calls, a growing buffer and its copies): 7.7 ms of CPU per chunk,
#: against 3.0 ms with reads this large.
_CHUNK_READ_SIZE = 4 * 1024 * 1024


@functools.cache
def _chunk_reader(url: str) -> Redis:
    # Its own connection: every other command's small reply would otherwise
    # allocate a read buffer this large.
    return Redis.from_url(url, socket_read_size=_CHUNK_READ_SIZE)


def rq_verify_chunk(job_id: str, n: int, chunks: int, options: dict[str, int]) -> int:
    """rq entry point of chunk ``n``; returns the number of results recorded so far.

    Raises:
        RuntimeError: The chunk's items are gone from Redis while its job is
            still unfinished (the chunk then fails and is retried, then the job).
    """
    settings, factory, connection = _process_state()
    if connection is None:
        raise ConfigError("REDIS_URL is not set; chunk jobs need Redis")
    reader = _chunk_reader(settings.redis_url) if settings.redis_url else connection
    raw = reader.get(CHUNK_PREFIX + chunk_id(job_id, n))
    if raw is None:
        with factory() as session:
            status = job_store.get_job(session, job_id).status
        if status in ("finished", "failed"):
            return 0  # a finished job's chunk run again (rq retry after a kill)
        raise RuntimeError(f"the items of chunk {n} of job {job_id} are gone from Redis")
    limits = BulkLimits(cache_ttl_s=int(options.get("cache_ttl_s", 3600)))
    counts = run_chunk(
        factory,
        job_id,
        _loads(raw),
        cache=RedisResultCache(connection),
        limits=limits,
        now=utc_now,
        keyless=keyless_bundle_verifier(settings),
    )
    if counts.finished:
        _delete_chunks(connection, job_id, chunks)
    return counts.done


def on_chunk_failure(job: Job, connection: Any, *exc_info: Any) -> None:
    """rq failure callback: fail the bulk job once a chunk has no retries left."""
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
    # The job is over: the other chunks' items are no longer needed (a chunk
    # that runs later finds the job failed and returns).
    _delete_chunks(connection, parent, int(job.args[2]))


def _delete_chunks(connection: Redis, job_id: str, chunks: int) -> None:
    try:
        connection.delete(*(CHUNK_PREFIX + chunk_id(job_id, i) for i in range(chunks)))
    except RedisError as e:  # they expire anyway
        log.warning("chunk items of job %s not deleted: %s", job_id, type(e).__name__)


class ChunkWorker(SimpleWorker):
    """A non-forking worker whose jobs are considered dead soon after their timeout.

    rq's SimpleWorker keeps a job in StartedJobRegistry for ``timeout + 60`` s
    after its last heartbeat. It enforces ``job_timeout`` itself (SIGALRM), so a
    live worker never holds a chunk past it; a short grace is enough and lets a
    killed worker's chunk be retried within seconds instead of a minute.
    """

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
