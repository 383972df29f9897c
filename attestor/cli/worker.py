# SPDX-License-Identifier: Apache-2.0
"""``attestor worker``: an rq worker on REDIS_URL (JSON serializer, never pickle)."""

from __future__ import annotations

import gc
import os

import click

from attestor.cli._common import migrated_engine, now, settings_from_env
from attestor.cli._startup import check_start_up
from attestor.errors import ConfigError

__all__ = ["command"]


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option(
    "--maintenance-interval",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Seconds between checks for jobs abandoned by dead workers (they are retried).",
)
def command(burst: bool, maintenance_interval: int) -> None:
    """Run jobs from the Redis queue."""
    from redis import Redis

    # Non-forking (rq's SimpleWorker): rq's Worker forks a work horse per job, which
    # costs more than a small chunk and throws away per-process setup each time.
    # It runs only our own task functions, whatever a job in Redis names.
    from attestor.jobs.rq_worker import make_worker
    from attestor.logs import configure_logging

    settings = settings_from_env()
    check_start_up(settings, os.environ)
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set; `attestor worker` needs Redis")
    from attestor.jobs.worker_state import build_worker_state, install_worker_state
    from attestor.services.policy_import import check_files, import_directory, read_policy_files
    from attestor.store.db import make_session_factory

    # A bad policy file stops the start with one line (exit 2) before anything
    # is migrated or dequeued.
    check_files(read_policy_files(settings.policy_dir))
    # Built once: rq calls our entry points by name with JSON arguments only, and
    # each job of this process uses this engine, Redis client, registry client,
    # policy source and signers (the engine and Redis connect lazily).
    state = build_worker_state(settings)
    configure_logging(settings.log_level)
    engine = migrated_engine(settings)
    try:
        # The policy files into the database, like kubectl apply; the jobs then
        # follow the database, so a later policy change needs no restart.
        import_directory(make_session_factory(engine), settings.policy_dir, now=now())
    finally:
        engine.dispose()
    state.issue.get()
    install_worker_state(state)
    connection = Redis.from_url(settings.redis_url)
    worker = make_worker(connection, maintenance_interval=maintenance_interval)
    from attestor.jobs.reverify import schedule_periodic_sweep

    schedule_periodic_sweep(worker.queues[0])
    # What is loaded by now lives as long as the worker: freezing it keeps the
    # collections that a chunk's garbage triggers from re-scanning it (~25 us
    # per verified envelope before, bench/bench_bulk_verify.py). A chunk's
    # items (~100 objects per envelope) stay alive while it runs, and with the
    # default threshold (700) every few envelopes set off a collection that
    # re-scanned them (~15 us per envelope); with 50,000, one in ~500 does.
    # Cycles are still collected, only later.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    worker.work(burst=burst, with_scheduler=True)
