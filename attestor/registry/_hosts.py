# SPDX-License-Identifier: Apache-2.0
"""Which hosts a registry may send us to: redirect targets and token realms.

A registry chooses the ``Location`` of its redirects and the ``realm`` of its
token challenges. Followed blindly, that lets anyone who controls an admitted
registry make the server open connections to its own loopback services, the
cloud metadata address or the internal network. A host we did not choose is
therefore allowed only when it is

* the registry's own ``host[:port]``;
* a host some policy admits as a registry (the operator named it);
* a host the operator lists for blob storage or token services; or
* a name or address that is public: such a name is connected to only at the
  public addresses it resolves to (see ``attestor.registry._connect``).

Loopback, private (RFC 1918, ULA), link-local, shared, unspecified,
multicast, reserved and documentation addresses are never public, including
when they hide inside an IPv4-mapped, NAT64 or 6to4 IPv6 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import SplitResult

if TYPE_CHECKING:
    from attestor.policy import PolicySet

__all__ = [
    "HostRules",
    "admitted_by_policies",
    "Reach",
    "host_names",
    "is_public_address",
    "netloc_key",
    "same_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Reach(Enum):
    """How a request to a host may be made."""

    #: A host the operator chose (the registry, a policy, a setting): any address.
    TRUSTED = "trusted"
    #: A host the registry chose: only at public addresses, checked at connect time.
    PUBLIC_ONLY = "public-only"
    #: Never contacted.
    REFUSED = "refused"


#: Not globally reachable (RFC 6890 and its updates), listed here as well as
#: asked of ``ipaddress``: what ``is_global`` says changed between CPython
#: patch releases, and e.g. 3.11.7 calls 192.0.0.8 (IETF protocol space) global.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routed unicast address (not ours to protect).

    ``ipaddress.is_global`` alone lets multicast and the deprecated IPv6
    site-local range through, and does not look inside 6to4 addresses.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None and not is_public_address(inner):
            return False
        if ip.is_site_local:
            return False
    if any(ip in net for net in _NOT_PUBLIC if net.version == ip.version):
        return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_private
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_unspecified
    )


def _ip_literal(hostname: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(hostname.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def netloc_key(parts: SplitResult) -> tuple[str, int] | None:
    """``(lower-case host, port)`` with the scheme's default port filled in.

    None when the URL has no host or an invalid port.
    """
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    return host, port if port is not None else _DEFAULT_PORTS.get(parts.scheme, 0)


def _spellings(key: tuple[str, int], scheme: str) -> tuple[str, ...]:
    """The ways a ``host[:port]`` list or policy may spell this host."""
    host, port = key
    shown = f"[{host}]" if ":" in host else host
    names = [f"{shown}:{port}"]
    if port == _DEFAULT_PORTS.get(scheme):
        names.append(shown)
    return tuple(names)


@dataclass(frozen=True)
class HostRules:
    """The operator's choices that let a registry send us elsewhere.

    Attributes:
        registry_admitted: Whether a policy admits ``host[:port]`` as a
            registry (any rule's host pattern matches).
        blob_hosts: ``host[:port]`` of blob storage / CDNs that registries
            redirect downloads to.
        auth_hosts: ``host[:port]`` of token services registries name as realm.
    """

    registry_admitted: Callable[[str], bool] = lambda _host: False
    blob_hosts: frozenset[str] = frozenset()
    auth_hosts: frozenset[str] = frozenset()

    @staticmethod
    def _listed(names: Iterable[str], listed: frozenset[str]) -> bool:
        return any(n in listed for n in names)

    def reach(
        self, registry: SplitResult, target: SplitResult, *, extra: frozenset[str] = frozenset()
    ) -> Reach:
        """How ``target`` (a redirect or realm URL of ``registry``) may be reached.

        Args:
            registry: The registry's base URL (``https://host[:port]/v2/``).
            target: The split URL the registry sent us to.
            extra: The hosts listed for this kind of target (blob or auth),
                plus any configured for this registry alone.
        """
        key = netloc_key(target)
        if key is None:
            return Reach.REFUSED
        names = _spellings(key, target.scheme)
        if key == netloc_key(registry) or self._listed(names, extra):
            return Reach.TRUSTED
        if any(self.registry_admitted(n) for n in names):
            return Reach.TRUSTED
        ip = _ip_literal(key[0])
        if ip is not None and not is_public_address(ip):
            # Decided on the literal: no connection is ever attempted.
            return Reach.REFUSED
        return Reach.PUBLIC_ONLY

    def redirect_reach(self, registry: SplitResult, target: SplitResult) -> Reach:
        """:meth:`reach` for a redirect (download or upload) target."""
        return self.reach(registry, target, extra=self.blob_hosts)

    def realm_reach(
        self, registry: SplitResult, realm: SplitResult, configured: frozenset[str] = frozenset()
    ) -> Reach:
        """:meth:`reach` for a token realm; ``configured`` are the registry's own auth hosts."""
        return self.reach(registry, realm, extra=self.auth_hosts | configured)


def same_host(a: SplitResult, b: SplitResult) -> bool:
    """Whether two URLs name the same ``host:port`` (default ports filled in)."""
    key = netloc_key(a)
    return key is not None and key == netloc_key(b)


def host_names(target: SplitResult) -> tuple[str, ...]:
    """The ``host[:port]`` spellings of ``target``'s host (empty if it has none)."""
    key = netloc_key(target)
    return _spellings(key, target.scheme) if key is not None else ()


def admitted_by_policies(policies: PolicySet) -> Callable[[str], bool]:
    """``host[:port] -> bool``: whether some rule of ``policies`` names it as a registry.

    Only the host pattern counts, not repositories or signature requirements:
    the question is whether the operator named the host, not whether an image
    from it would be admitted.
    """

    def admitted(host: str) -> bool:
        return any(rule.matches_host(host) for p in policies.policies for rule in p.registries)

    return admitted
