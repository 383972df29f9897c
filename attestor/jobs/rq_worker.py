# SPDX-License-Identifier: Apache-2.0
"""The rq worker of ``attestor worker``: it runs only our own entry points.

An rq job names the function to run as a dotted path, and rq's worker
imports and calls whatever that path names. Anyone who can write to the
Redis queue could then run ``os.system`` (or import any module, which runs
its top-level code) in the worker, which holds the database and signing
credentials. :class:`AllowListJob` refuses, before anything is imported,
every function and callback that is not one of the few this package
enqueues; such a job fails like any job that raises, and nothing of it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from attestor.errors import InvalidInput
from attestor.jobs.reverify import periodic_sweep_entry
from attestor.jobs.runner import QUEUE_NAME, rq_entry
from attestor.jobs.verification import ChunkWorker, on_chunk_failure, rq_verify_chunk

__all__ = [
    "ALLOWED_CALLBACKS",
    "ALLOWED_FUNCTIONS",
    "AllowListJob",
    "make_worker",
]


def _dotted(fn: Callable[..., Any]) -> str:
    # How rq names a module-level function in a job (Job.create).
    return f"{fn.__module__}.{fn.__qualname__}"


#: Every function this package enqueues on rq.
ALLOWED_FUNCTIONS = frozenset(_dotted(f) for f in (rq_entry, rq_verify_chunk, periodic_sweep_entry))
#: Every callback this package attaches to an rq job.
ALLOWED_CALLBACKS = frozenset({_dotted(on_chunk_failure)})


def _allowed(name: str | None, allowed: frozenset[str], what: str) -> None:
    if name and name not in allowed:
        raise InvalidInput(f"rq job names {what} {name[:200]!r}, which is not one of ours")


def _allowed_callback(what: str, name_attr: str) -> Any:
    """A property that resolves rq's callback ``what`` only when it is one of ours."""
    resolve = getattr(Job, what.replace(" ", "_")).fget

    def get(job: Job) -> Any:
        _allowed(getattr(job, name_attr), ALLOWED_CALLBACKS, what)
        return resolve(job)

    return property(get, doc=f"The {what}, when it is one of ours (else InvalidInput).")


class AllowListJob(Job):
    """An rq ``Job`` that resolves only the allowed functions and callbacks.

    The checks run where rq turns a name into a callable, so no path of the
    worker (perform, callbacks, retries) can skip them.
    """

    @property
    def func(self) -> Any:
        """The job's function, when it is one of ours.

        Raises:
            InvalidInput: any other function, or a method of a stored instance.
        """
        if self.instance is not None:
            raise InvalidInput("rq job names a method of a stored instance, which is not ours")
        name = self.func_name
        if not name:
            raise InvalidInput("rq job names no function")
        _allowed(name, ALLOWED_FUNCTIONS, "function")
        return Job.func.fget(self)  # type: ignore[attr-defined]

    success_callback = _allowed_callback("success callback", "_success_callback_name")
    failure_callback = _allowed_callback("failure callback", "_failure_callback_name")
    stopped_callback = _allowed_callback("stopped callback", "_stopped_callback_name")


def make_worker(connection: Redis, *, maintenance_interval: int = 15) -> ChunkWorker:
    """The worker ``attestor worker`` runs: our queue, JSON jobs, :class:`AllowListJob`."""
    queue = Queue(
        QUEUE_NAME, connection=connection, serializer=JSONSerializer, job_class=AllowListJob
    )
    return ChunkWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        job_class=AllowListJob,
        maintenance_interval=maintenance_interval,
    )
