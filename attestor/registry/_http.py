# SPDX-License-Identifier: Apache-2.0
"""HTTP transport for the registry client: schemes, redirects, auth, errors.

Written on ``requests`` rather than oras-py 0.2 because oras (checked 0.2.43)
picks one scheme per client instead of per host, caches a single token for all
scopes, reads ``~/.docker/config.json``, follows redirects to any scheme,
retries with sleeps of up to minutes, raises ``ValueError`` and does not verify
blob digests while streaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from attestor.errors import GatewayTimeout, UpstreamError
from attestor.registry.auth import Credentials, RegistryAuth

__all__ = ["Transport"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 20
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _reason(e: BaseException) -> str:
    match = _ERRNO_RE.search(str(e))
    return match.group(1).strip() if match else type(e).__name__


class Transport:
    """Sends requests to ``/v2/`` of a registry host; translates every failure."""

    def __init__(
        self,
        *,
        insecure_registries: frozenset[str],
        credentials: Mapping[str, Credentials],
        timeout: float,
        max_redirects: int,
        max_token_bytes: int,
        session: requests.Session | None = None,
    ) -> None:
        self._insecure = frozenset(h.lower() for h in insecure_registries)
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._session = session if session is not None else requests.Session()
        # Never pick up proxies, CA bundles or ~/.netrc passwords from the
        # environment: what we talk to is decided by configuration alone.
        self._session.trust_env = False
        self.auth = RegistryAuth(
            credentials,
            session=self._session,
            url_allowed=self.url_allowed,
            timeout=timeout,
            max_token_bytes=max_token_bytes,
        )

    def base_url(self, host: str) -> str:
        """``https://host/v2/``, or ``http://`` for an insecure registry."""
        scheme = "http" if host.lower() in self._insecure else "https"
        return f"{scheme}://{host}/v2/"

    def url_allowed(self, url: str) -> bool:
        """HTTPS anywhere; plain HTTP only to hosts in ``insecure_registries``."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return bool(parts.netloc)
        return parts.scheme == "http" and parts.netloc.lower() in self._insecure

    def request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send, authenticate on 401 once, follow allowed redirects; stream the body.

        The caller closes the response. 5xx answers raise.

        Raises:
            GatewayTimeout: the host did not connect or answer in time.
            UpstreamError: unreachable host, 5xx, a refused credential,
                too many redirects or a redirect to a disallowed URL.
        """
        url = urljoin(self.base_url(host), path)
        if not self.url_allowed(url):
            raise UpstreamError(f"registry {host}: refusing URL {url[:200]}")
        sent = dict(headers or {})
        if urlsplit(url).netloc.lower() != host.lower():
            # An upload Location on another host gets no registry credentials.
            return self._checked(self._send(method, host, url, sent, data, params), host, method)
        auth = self.auth.authorization(host, scope)
        for attempt in range(2):
            if auth is not None:
                sent["Authorization"] = auth
            resp = self._send(method, host, url, sent, data, params)
            if resp.status_code != 401:
                break
            challenge = resp.headers.get("WWW-Authenticate")
            resp.close()
            if attempt == 1:
                raise UpstreamError(
                    f"registry {host} refused our credentials for {scope}",
                    detail={"registry": host, "status": 401},
                )
            auth = self.auth.answer(host, scope, challenge)
        return self._checked(resp, host, method)

    @staticmethod
    def _checked(resp: requests.Response, host: str, method: str) -> requests.Response:
        if resp.status_code >= 500:
            resp.close()
            raise UpstreamError(
                f"registry {host} failed: HTTP {resp.status_code} for {method} "
                f"{urlsplit(resp.url).path[:200]}",
                detail={"registry": host, "status": resp.status_code},
            )
        return resp

    def _send(
        self,
        method: str,
        host: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        params: Mapping[str, str] | None,
    ) -> requests.Response:
        origin = urlsplit(url).netloc
        for _ in range(self._max_redirects + 1):
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    params=params,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.Timeout as e:
                # Connect and read timeouts alike: the caller sees a 504, not a 502.
                raise GatewayTimeout(
                    f"registry {host} timed out after {self._timeout}s",
                    detail={"registry": host, "reason": "timeout"},
                ) from e
            except requests.RequestException as e:
                raise UpstreamError(
                    f"registry {host} is unreachable: {_reason(e)}",
                    detail={"registry": host, "reason": _reason(e)},
                ) from e
            if resp.status_code not in _REDIRECTS:
                return resp
            location = resp.headers.get("Location", "")
            resp.close()
            target = urljoin(url, location)
            if not location or not self.url_allowed(target):
                raise UpstreamError(
                    f"registry {host} redirected to a disallowed URL {target[:200]!r}"
                )
            if urlsplit(target).netloc != origin:
                # Credentials are for the registry, not for its storage backend.
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            if resp.status_code == 303:
                method, data = "GET", None
            url, params = target, None
        raise UpstreamError(f"registry {host}: more than {self._max_redirects} redirects")

    def iter_body(self, resp: requests.Response, host: str) -> Iterator[bytes]:
        """The raw (not content-decoded) body in chunks, failures translated.

        Raises:
            GatewayTimeout: if the host stops sending mid-body for longer than
                the timeout.
            UpstreamError: if the connection breaks mid-body.
        """
        # Digests cover the bytes as stored: never undo a Content-Encoding.
        try:
            yield from resp.raw.stream(_CHUNK, decode_content=False)
        except (urllib3.exceptions.TimeoutError, TimeoutError) as e:
            raise GatewayTimeout(
                f"registry {host} stalled mid-download for over {self._timeout}s",
                detail={"registry": host, "reason": "timeout"},
            ) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise UpstreamError(
                f"registry {host} broke off a download: {_reason(e)}",
                detail={"registry": host},
            ) from e

    def read_capped(self, resp: requests.Response, host: str, cap: int) -> bytes | None:
        """The whole body, or None if it exceeds ``cap`` bytes.

        Raises:
            GatewayTimeout: if the host stalls mid-body.
            UpstreamError: if the connection breaks mid-body.
        """
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            return None
        buf = bytearray()
        for chunk in self.iter_body(resp, host):
            buf += chunk
            if len(buf) > cap:
                return None
        return bytes(buf)
