# SPDX-License-Identifier: Apache-2.0
"""Registry authentication: anonymous, HTTP Basic and Bearer tokens.

Follows the distribution token spec (docs/spec/auth/token.md): a 401 carries
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; we GET the realm
with ``service`` and ``scope`` and retry with ``Authorization: Bearer <token>``.
The username and password go along only when the realm is on the registry's
own host or on a host configured for that registry (``auth_hosts``): a
registry must not be able to send our credentials for it anywhere else. Tokens are cached per
(registry, scope) for the client's lifetime and dropped when a 401 shows they
went stale.

Credentials come only from our configuration, never from ``~/.docker`` or
``~/.netrc``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from requests.utils import parse_dict_header

from attestor.errors import UpstreamError

__all__ = ["Challenge", "Credentials", "RegistryAuth", "TokenFetch", "parse_challenge"]


@dataclass(frozen=True)
class Credentials:
    """A username and password, or a static bearer token, for one registry host.

    With ``token`` the registry's Bearer challenges are answered with that token
    directly (no token endpoint round trip); Basic challenges are refused.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    token: str | None = field(default=None, repr=False)
    #: ``host[:port]`` of token services (realms) on other hosts that may
    #: receive the username and password; the registry's own host always may.
    auth_hosts: frozenset[str] = frozenset()

    def basic(self) -> str | None:
        """The ``Authorization`` header value for HTTP Basic (None for a token)."""
        if self.token is not None:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


#: ``(registry host, realm URL, query, credentials, max bytes) -> (status, body)``:
#: GET a token endpoint. The transport decides whether the realm may be
#: reached and whether the credentials may go there.
TokenFetch = Callable[[str, str, Mapping[str, str], Credentials | None, int], tuple[int, bytes]]


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


def parse_challenge(header: str) -> Challenge:
    """Parse ``Basic realm=...`` or ``Bearer realm=...,service=...,scope=...``.

    Raises:
        UpstreamError: if the scheme is neither Basic nor Bearer.
    """
    scheme, _, params = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        raise UpstreamError(f"unsupported registry auth scheme {scheme[:20]!r}")
    # requests' RFC 2068 list parser handles quoted values containing commas
    # (scopes like "repository:a:pull,push").
    values: dict[str, str | None] = parse_dict_header(params)  # type: ignore[no-untyped-call]
    return Challenge(
        scheme=scheme,
        realm=values.get("realm"),
        service=values.get("service"),
        scope=values.get("scope"),
    )


class RegistryAuth:
    """Produces ``Authorization`` headers per (host, scope); thread-safe."""

    def __init__(
        self,
        credentials: Mapping[str, Credentials],
        *,
        fetch: TokenFetch,
        max_token_bytes: int,
    ) -> None:
        self._credentials = dict(credentials)
        self._fetch = fetch
        self._max_token_bytes = max_token_bytes
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def authorization(self, host: str, scope: str) -> str | None:
        """The header to send up front, once a challenge from ``host`` is known.

        Raises:
            GatewayTimeout: if the token endpoint does not answer in time.
            UpstreamError: if the token endpoint fails.
        """
        with self._lock:
            challenge = self._challenges.get(host)
            token = self._tokens.get((host, scope))
        if challenge is None:
            return None
        creds = self._credentials.get(host)
        if challenge.scheme == "basic":
            return creds.basic() if creds else None
        if creds is not None and creds.token is not None:
            return f"Bearer {creds.token}"
        if token is None:
            token = self._fetch_token(host, challenge, scope)
        return f"Bearer {token}"

    def answer(self, host: str, scope: str, header: str | None) -> str:
        """The header to retry with after a 401 carrying ``header``.

        Raises:
            UpstreamError: if the challenge is missing or unsupported, Basic is
                asked for without configured credentials, or the token
                endpoint fails.
        """
        if not header:
            raise UpstreamError(f"registry {host} answered 401 without WWW-Authenticate")
        challenge = parse_challenge(header)
        with self._lock:
            self._challenges[host] = challenge
            self._tokens.pop((host, scope), None)
        creds = self._credentials.get(host)
        if challenge.scheme == "basic":
            basic = creds.basic() if creds is not None else None
            if basic is None:
                raise UpstreamError(
                    f"registry {host} requires credentials (username and password) and "
                    "none are configured for it"
                )
            return basic
        if creds is not None and creds.token is not None:
            return f"Bearer {creds.token}"
        return f"Bearer {self._fetch_token(host, challenge, challenge.scope or scope, scope)}"

    def _fetch_token(
        self, host: str, challenge: Challenge, scope: str, cache_scope: str | None = None
    ) -> str:
        if not challenge.realm:
            raise UpstreamError(f"registry {host} names no token realm")
        params = {"scope": scope}
        if challenge.service:
            params["service"] = challenge.service
        status, body = self._fetch(
            host, challenge.realm, params, self._credentials.get(host), self._max_token_bytes + 1
        )
        if status != 200:
            raise UpstreamError(f"token endpoint of {host} answered HTTP {status}")
        if len(body) > self._max_token_bytes:
            raise UpstreamError(
                f"token endpoint of {host} sent more than {self._max_token_bytes} bytes"
            )
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError) as e:
            raise UpstreamError(f"token endpoint of {host} sent no JSON object") from e
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"token endpoint of {host} sent no token")
        with self._lock:
            self._tokens[(host, cache_scope or scope)] = token
        return token
