# SPDX-License-Identifier: Apache-2.0
"""``attestor worker``: an rq worker on REDIS_URL (JSON serializer, never pickle)."""

from __future__ import annotations

import click

from attestor.cli._common import migrated_engine, settings_from_env
from attestor.errors import ConfigError

__all__ = ["command"]


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def command(burst: bool) -> None:
    """Run jobs from the Redis queue."""
    from redis import Redis
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    from attestor.api.observability import configure_logging
    from attestor.jobs.runner import QUEUE_NAME

    settings = settings_from_env()
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set; `attestor worker` needs Redis")
    configure_logging(settings.log_level)
    migrated_engine(settings).dispose()
    connection = Redis.from_url(settings.redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    Worker([queue], connection=connection, serializer=JSONSerializer).work(burst=burst)
