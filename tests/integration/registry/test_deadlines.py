# SPDX-License-Identifier: Apache-2.0
"""Every download has a total deadline: a registry that trickles a byte per
100 ms (well inside the per-read timeout) cannot hold a thread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attestor.api.problems import status_of
from attestor.errors import GatewayTimeout
from attestor.registry import BlobCache, RegistryClient, RegistryLimits, parse_reference
from tests.integration.registry._servers import trickle_server

DIGEST = "sha256:" + "ab" * 32
#: 600 bytes at 100 ms each: a minute of trickle, each byte well inside the 3 s timeout.
SIZE = 600


def _client(host: str, tmp_path: Path, limits: RegistryLimits) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset({host}), cache=BlobCache(tmp_path), limits=limits, timeout=3
    )


def test_a_trickling_blob_fails_at_its_deadline(tmp_path: Path) -> None:
    # floor 1 s + 600 B / 1 MiB/s: a deadline of about one second.
    limits = RegistryLimits(blob_deadline_floor_s=1.0)
    assert 1.0 < limits.blob_deadline_s(SIZE) < 1.01
    with trickle_server(SIZE) as server:
        client = _client(server.host, tmp_path, limits)
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout) as err:
            client.fetch_blob(parse_reference(f"{server.host}/a/b:c"), DIGEST, expected_size=SIZE)
        elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 3, elapsed
    assert err.value.message == f"registry {server.host} exceeded the deadline of 1s"
    assert err.value.detail == {"registry": server.host, "reason": "deadline"}
    assert (status_of(err.value), err.value.slug) == (504, "upstream-timeout")
    assert list((tmp_path / "sha256").iterdir()) == []  # nothing half-stored


def test_a_blob_declaring_gigabytes_must_still_keep_up_the_minimum_rate(tmp_path: Path) -> None:
    # 4 GiB declared: the total deadline is the one-hour cap, but after the
    # 1 s floor the bytes must come at 1 MiB/s, which a trickle never does.
    limits = RegistryLimits(blob_deadline_floor_s=1.0)
    declared = 4 << 30
    assert limits.blob_deadline_s(declared) == 3600
    with trickle_server(SIZE) as server:
        client = _client(server.host, tmp_path, limits)
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout) as err:
            client.fetch_blob(
                parse_reference(f"{server.host}/a/b:c"), DIGEST, expected_size=declared
            )
        elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 3, elapsed
    assert err.value.message == (
        f"registry {server.host} sent a download slower than {1 << 20} bytes/s"
    )
    assert err.value.detail == {"registry": server.host, "reason": "too-slow"}


def test_trickled_manifest_headers_fail_at_the_deadline(tmp_path: Path) -> None:
    # The headers themselves trickle: only a deadline on the whole exchange,
    # not one on the body, ends this.
    limits = RegistryLimits(request_deadline_s=1.0)
    with trickle_server(SIZE) as server:
        client = _client(server.host, tmp_path, limits)
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout, match="exceeded the deadline of 1s"):
            client.resolve(parse_reference(f"{server.host}/a/b:c"))
        elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 3, elapsed


def test_the_blob_deadline_grows_with_size_up_to_the_cap() -> None:
    limits = RegistryLimits(
        blob_deadline_floor_s=60, blob_min_bytes_per_s=1 << 20, blob_deadline_max_s=3600
    )
    assert limits.blob_deadline_s(0) == 60
    assert limits.blob_deadline_s(600 << 20) == 660
    assert limits.blob_deadline_s(8 << 30) == 3600
