# SPDX-License-Identifier: Apache-2.0
"""Every way a registry can be too slow ends in GatewayTimeout (HTTP 504)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attestor.api.problems import status_of
from attestor.errors import GatewayTimeout, UpstreamError
from attestor.registry import BlobCache, RegistryClient, parse_reference
from attestor.registry._hosts import HostRules
from attestor.registry._http import Deadline, Transport
from tests.integration.registry._servers import silent_server, stalling_server

DIGEST = "sha256:" + "ab" * 32


def _transport(*hosts: str) -> Transport:
    return Transport(
        insecure_registries=frozenset(hosts),
        credentials={},
        timeout=0.5,
        max_redirects=3,
        max_token_bytes=4096,
        # The realm is another loopback port: named by the operator here.
        hosts=HostRules(auth_hosts=frozenset(hosts)),
    )


def test_connect_or_read_timeout_is_a_gateway_timeout(tmp_path: Path) -> None:
    with silent_server() as host:
        client = RegistryClient(
            insecure_registries=frozenset({host}), cache=BlobCache(tmp_path), timeout=0.5
        )
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout, match=f"registry {host} timed out after 0.5s") as err:
            client.resolve(parse_reference(f"{host}/a:b"))
        assert time.monotonic() - t0 < 5
    assert isinstance(err.value, UpstreamError)
    assert (status_of(err.value), err.value.slug) == (504, "upstream-timeout")
    assert err.value.detail == {"registry": host, "reason": "timeout"}


def test_stall_mid_body_is_a_gateway_timeout() -> None:
    with silent_server() as realm_host, stalling_server(f"http://{realm_host}/t") as host:
        transport = _transport(host, realm_host)
        with Deadline(30) as deadline:
            resp = transport.request(
                "GET", host, f"a/blobs/{DIGEST}", scope="repository:a:pull", deadline=deadline
            )
            t0 = time.monotonic()
            with pytest.raises(GatewayTimeout, match=f"registry {host} stalled mid-download"):
                for _ in transport.iter_body(resp, host, deadline):
                    pass
            resp.close()
        assert time.monotonic() - t0 < 5


def test_token_endpoint_timeout_is_a_gateway_timeout() -> None:
    with silent_server() as realm_host, stalling_server(f"http://{realm_host}/t") as host:
        transport = _transport(host, realm_host)
        with (
            Deadline(30) as deadline,
            pytest.raises(GatewayTimeout, match=f"token endpoint of {host} timed out") as err,
        ):
            transport.request(
                "GET", host, "a/manifests/v1", scope="repository:a:pull", deadline=deadline
            )
    assert status_of(err.value) == 504
