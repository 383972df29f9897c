# SPDX-License-Identifier: Apache-2.0
"""What bulk verification stores in Redis reads back exactly, whatever a request held.

Chunks and cached outcomes are written with orjson, which cannot write every
value Python's json reads from a request (integers over 64 bits, lone
surrogates) and reads big integers back as floats; those go as marked json.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from attestor.jobs.verification import CHUNK_PREFIX, RedisResultCache, _dumps, _loads
from attestor.services.bulk_verify import Outcome

ODD_VALUES = [
    {"n": 2**70, "neg": -(2**64)},
    {"s": "\ud800 lone surrogate", "k": ["\udfff"]},
    {"plain": [1, 2.5, None, True, "é"]},
]


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    try:
        yield connection
    finally:
        connection.close()


@pytest.mark.parametrize("value", ODD_VALUES)
def test_chunk_items_round_trip_through_redis(redis: Redis, value: dict[str, object]) -> None:
    key = f"{CHUNK_PREFIX}test-encoding"
    redis.set(key, _dumps([{"key": "k", "indexes": [0], "item": value}]), ex=60)
    raw = redis.get(key)
    assert isinstance(raw, bytes)
    back = _loads(raw)
    assert back == [{"key": "k", "indexes": [0], "item": value}]
    assert type(back[0]["item"].get("n", 0)) is int  # never a float


def test_cached_outcomes_round_trip_with_odd_reasons(redis: Redis) -> None:
    cache = RedisResultCache(redis)
    outcomes = {
        "a" * 64 + ":f": Outcome(status="rejected", reason="bad key '\ud800'"),
        "b" * 64 + ":f": Outcome(status="verified", attestation_id="att-1"),
        "c" * 64 + ":f": Outcome(status="rejected", reason="é \u2028 \x00", revoked=True),
    }
    cache.put_many(outcomes, ttl_s=60)
    assert cache.get_many([*outcomes, "d" * 64 + ":f"]) == outcomes
    assert 0 < redis.ttl("attestor:vcache:" + "a" * 64 + ":f") <= 60
