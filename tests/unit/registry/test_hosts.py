# SPDX-License-Identifier: Apache-2.0
"""Which hosts a registry may send us to (the decision; connections are tested
against real servers in tests/integration/registry/test_steering.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestor.errors import ConfigError
from attestor.registry._hosts import HostRules, Reach, is_public_address
from attestor.registry._http import Transport
from attestor.registry.credentials import load_registry_credentials

PRIVATE_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.2", False),
        ("169.254.169.254", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("192.0.0.8", False),  # found by Hypothesis: "global" to CPython 3.11.7
        ("0.0.0.0", False),  # noqa: S104 - an address under test, not a bind
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("::1", False),
        ("::", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", False),  # mapped: never needed for a registry, refused
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2001:db8::1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@given(st.sampled_from(PRIVATE_V4), st.integers(min_value=0, max_value=2**32 - 1))
def test_no_address_in_a_private_v4_range_is_public(network: str, n: int) -> None:
    net = ipaddress.ip_network(network)
    ip = net[n % net.num_addresses]
    assert not is_public_address(ip)
    # Nor hidden in IPv6: mapped, 6to4.
    assert not is_public_address(ipaddress.IPv6Address(f"::ffff:{ip}"))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | 1)
    assert not is_public_address(sixtofour)


BASE = urlsplit("https://registry.example:5000/v2/")
TRANSPORT = Transport(
    insecure_registries=frozenset({"[x"}),
    credentials={},
    timeout=1,
    max_redirects=1,
    max_token_bytes=1,
)


def _reach(url: str, rules: HostRules | None = None) -> Reach:
    return (rules or HostRules()).redirect_reach(BASE, urlsplit(url))


def test_reach_of_redirect_targets() -> None:
    assert _reach("https://registry.example:5000/blob") is Reach.TRUSTED
    assert _reach("https://REGISTRY.example.:5000/blob") is Reach.TRUSTED
    # Same name, another port: not the registry.
    assert _reach("https://registry.example/blob") is Reach.PUBLIC_ONLY
    assert _reach("https://cdn.example/blob") is Reach.PUBLIC_ONLY
    assert _reach("https://8.8.8.8/blob") is Reach.PUBLIC_ONLY
    for private in ("127.0.0.2", "169.254.169.254", "10.0.0.1", "[fd00::1]", "[::1]"):
        assert _reach(f"https://{private}/x") is Reach.REFUSED, private
    assert _reach("https://:443/x") is Reach.REFUSED
    assert _reach("https://h:99999/x") is Reach.REFUSED


def test_operator_named_hosts_are_trusted_at_any_address() -> None:
    rules = HostRules(
        registry_admitted=lambda host: host == "127.0.0.2:5000",
        blob_hosts=frozenset({"10.0.0.9:9000", "minio.internal"}),
    )
    assert _reach("https://127.0.0.2:5000/x", rules) is Reach.TRUSTED
    assert _reach("https://10.0.0.9:9000/x", rules) is Reach.TRUSTED
    assert _reach("https://minio.internal/x", rules) is Reach.TRUSTED
    assert _reach("https://minio.internal:443/x", rules) is Reach.TRUSTED
    assert _reach("https://10.0.0.9:9001/x", rules) is Reach.REFUSED
    # Blob hosts are not token services, and the other way round.
    assert rules.realm_reach(BASE, urlsplit("https://10.0.0.9:9000/t")) is Reach.REFUSED
    assert (
        rules.realm_reach(BASE, urlsplit("https://10.0.0.9:9000/t"), frozenset({"10.0.0.9:9000"}))
        is Reach.TRUSTED
    )


def test_credentials_file_auth_hosts(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("r.example: {username: u, password: p, auth_hosts: [Auth.Example]}\n")
    path.chmod(0o600)
    assert load_registry_credentials(path)["r.example"].auth_hosts == {"auth.example"}
    path.write_text("r.example: {username: u, password: p, auth_hosts: ['a/b']}\n")
    with pytest.raises(ConfigError, match="auth_hosts must be a list of host"):
        load_registry_credentials(path)
    path.write_text("r.example: {token: t, auth_hosts: [a]}\n")
    with pytest.raises(ConfigError, match="exactly username and password, or token"):
        load_registry_credentials(path)


@given(st.text(max_size=60), st.sampled_from(["http", "https"]))
def test_reach_never_raises_and_refuses_every_private_literal(netloc: str, scheme: str) -> None:
    url = f"{scheme}://{netloc}/x"
    try:
        target = urlsplit(url)
    except ValueError:
        # What urllib cannot split, the transport refuses before any rule.
        assert not TRANSPORT.url_allowed(url)
        return
    reach = HostRules().redirect_reach(BASE, target)
    assert isinstance(reach, Reach)
    try:
        ip = ipaddress.ip_address((target.hostname or "").strip("[]"))
    except ValueError:
        return
    if not is_public_address(ip):
        assert reach is Reach.REFUSED


@given(st.ip_addresses())
def test_reach_of_any_literal_follows_is_public(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    reach = HostRules().redirect_reach(BASE, urlsplit(f"https://{shown}:8443/x"))
    assert reach is (Reach.PUBLIC_ONLY if is_public_address(ip) else Reach.REFUSED)
