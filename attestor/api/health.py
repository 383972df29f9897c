# SPDX-License-Identifier: Apache-2.0
# flask-smorest ships no type hints; its decorators keep our signatures at run time.
# mypy: disable-error-code="untyped-decorator"
"""Liveness, readiness and metrics: public, outside ``/v1``."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from attestor.api._json_body import Blueprint
from attestor.api._state import app_state
from attestor.api.auth import public
from attestor.api.problems import PROBLEM_MEDIA_TYPE
from attestor.errors import Error, Unavailable
from attestor.store import jobs as job_store
from attestor.store.db import ping

__all__ = ["blp"]

blp = Blueprint("health", __name__, description="Liveness, readiness and metrics.")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ready"})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)


@blp.route("/healthz", methods=["GET"])
@public
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _ping_redis(url: str) -> None:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except RedisError as e:
        raise Unavailable(f"redis unreachable: {type(e).__name__}") from e
    finally:
        client.close()


@blp.route("/readyz", methods=["GET"])
@public
@blp.response(200, ReadySchema)
@blp.alt_response(
    503, schema="Problem", description="A dependency is down.", content_type=PROBLEM_MEDIA_TYPE
)
def readyz() -> dict[str, Any]:
    """Readiness: the database answers, and Redis when configured."""
    state = app_state()
    checks: dict[str, str] = {}
    failed: list[str] = []
    try:
        ping(state.engine)
        checks["database"] = "ok"
    except Error as e:
        checks["database"] = e.message
        failed.append("database")
    if state.settings.redis_url:
        try:
            _ping_redis(state.settings.redis_url)
            checks["redis"] = "ok"
        except Error as e:
            checks["redis"] = e.message
            failed.append("redis")
    if failed:
        raise Unavailable(f"not ready: {', '.join(failed)} down", detail={"checks": checks})
    return {"status": "ready", "checks": checks}


@blp.route("/metrics", methods=["GET"])
@public
@blp.doc(
    responses={"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}}
)
def metrics() -> Response:
    """Prometheus metrics of this process."""
    state = app_state()
    try:
        with state.session_factory() as session:
            state.metrics.job_queue_depth.set(job_store.count_jobs(session))
    except Exception:  # noqa: BLE001, S110 - a down database must not hide the other metrics
        pass
    return Response(generate_latest(state.metrics.registry), mimetype=CONTENT_TYPE_LATEST)
