# SPDX-License-Identifier: Apache-2.0
"""HTTP transport for the registry client: schemes, hosts, redirects, auth, deadlines, errors.

Written on ``requests`` rather than oras-py 0.2 because oras (checked 0.2.43)
picks one scheme per client instead of per host, caches a single token for all
scopes, reads ``~/.docker/config.json``, follows redirects to any scheme,
retries with sleeps of up to minutes, raises ``ValueError`` and does not verify
blob digests while streaming.

Redirects are followed here, one hop at a time, never by ``requests``: each
hop's host is checked (``attestor.registry._hosts``) and the registry's
``Authorization`` is dropped as soon as a hop leaves the registry's host.

Failures reach API callers as a short fixed message (unreachable, timed out,
TLS verification failed, refused host, deadline). The library's text, which
can carry resolved addresses, ports and errno strings, is only logged:
echoing it would let a caller map what the server can reach.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import logging
import time
from collections.abc import Iterator, Mapping
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
import urllib3.exceptions

from attestor.errors import GatewayTimeout, UpstreamError
from attestor.registry._connect import AddressRefused, Deadline, GuardedAdapter, hop
from attestor.registry._hosts import HostRules, Reach, host_names, same_host
from attestor.registry.auth import Credentials, RegistryAuth

__all__ = ["Deadline", "Transport"]

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 20
#: A connect timeout this close to the deadline counts as the deadline.
_SLACK_S = 0.05


def _caused_by(e: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among ``e``'s causes (requests wraps urllib3 wraps ours)."""
    seen: set[int] = set()
    todo: list[object] = [e]
    while todo:
        cur = todo.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return True
        todo += [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
    return False


def _shown(url: str) -> str:
    """scheme://host/path for logs: presigned query strings are credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:300]


def _join(base: str, ref: str) -> str | None:
    """``ref`` resolved against ``base``; None if it does not parse (e.g. ``https://[x``)."""
    try:
        joined = urljoin(base, ref)
        urlsplit(joined)
    except ValueError:
        return None
    return joined


def _deadline_error(subject: str, deadline: Deadline, host: str) -> GatewayTimeout:
    return GatewayTimeout(
        f"{subject} exceeded the deadline of {round(deadline.seconds, 1):g}s",
        detail={"registry": host, "reason": "deadline"},
    )


def _refused(subject: str, what: str, target: SplitResult, host: str) -> UpstreamError:
    name = (host_names(target) or (target.netloc[:100] or "(none)",))[0]
    return UpstreamError(
        f"{subject}: {what} refused: {name} is not an allowed host",
        detail={"registry": host, "reason": f"{what.replace(' ', '-')}-refused"},
    )


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
        token_deadline_s: float = 30.0,
        hosts: HostRules = HostRules(),  # noqa: B008 - frozen value
        session: requests.Session | None = None,
    ) -> None:
        self._insecure = frozenset(h.lower() for h in insecure_registries)
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._token_deadline_s = token_deadline_s
        self._hosts = hosts
        self._session = session if session is not None else requests.Session()
        # Never pick up proxies, CA bundles or ~/.netrc passwords from the
        # environment: what we talk to is decided by configuration alone.
        self._session.trust_env = False
        # Nor keep cookies: the client serves every job of a worker process, so
        # a cookie one registry answer sets would ride along on later requests.
        self._session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = GuardedAdapter()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self.auth = RegistryAuth(
            credentials, fetch=self._fetch_token, max_token_bytes=max_token_bytes
        )

    def base_url(self, host: str) -> str:
        """``https://host/v2/``, or ``http://`` for an insecure registry."""
        scheme = "http" if host.lower() in self._insecure else "https"
        return f"{scheme}://{host}/v2/"

    def url_allowed(self, url: str) -> bool:
        """HTTPS anywhere; plain HTTP only to hosts in ``insecure_registries``.

        This is the scheme rule only; hosts are checked per hop as well.
        """
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
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
        deadline: Deadline,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send, authenticate on 401 once, follow allowed redirects; stream the body.

        The caller closes the response, and reads its body within ``deadline``
        (with :meth:`iter_body` or :meth:`read_capped`). 5xx answers raise.

        Raises:
            GatewayTimeout: the host did not connect or answer in time, or the
                deadline passed.
            UpstreamError: unreachable host, TLS failure, 5xx, a refused
                credential, too many redirects or a redirect to a refused URL.
        """
        base = self.base_url(host)
        url = _join(base, path) or ""
        if not self.url_allowed(url):
            raise UpstreamError(f"registry {host}: refusing URL {_shown(url)}")
        sent = dict(headers or {})
        if not same_host(urlsplit(url), urlsplit(base)):
            # An upload Location on another host gets no registry credentials.
            resp = self._send(method, host, url, sent, data, params, deadline)
            return self._checked(resp, host, method)
        auth = self.auth.authorization(host, scope)
        for attempt in range(2):
            if auth is not None:
                sent["Authorization"] = auth
            resp = self._send(method, host, url, sent, data, params, deadline)
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

    def is_own(self, host: str, resp: requests.Response) -> bool:
        """Whether ``resp`` came from the registry ``host`` itself (not a redirect target)."""
        return same_host(urlsplit(resp.url), urlsplit(self.base_url(host)))

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
        deadline: Deadline,
    ) -> requests.Response:
        base = urlsplit(self.base_url(host))
        subject = f"registry {host}"
        for _ in range(self._max_redirects + 1):
            parts = urlsplit(url)
            reach = (
                Reach.TRUSTED if same_host(parts, base) else self._hosts.redirect_reach(base, parts)
            )
            if reach is Reach.REFUSED:
                raise _refused(subject, "redirect", parts, host)
            resp = self._once(
                subject, host, method, url, headers, data, params, deadline, reach, "redirect"
            )
            if resp.status_code not in _REDIRECTS:
                return resp
            location = resp.headers.get("Location", "")
            resp.close()
            target = _join(url, location) or ""
            if not location or not self.url_allowed(target):
                raise UpstreamError(
                    f"registry {host} redirected to a disallowed URL {_shown(target)!r}",
                    detail={"registry": host, "reason": "redirect-refused"},
                )
            if not same_host(urlsplit(target), base):
                # Credentials and tokens are for the registry, not its storage backend.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status_code == 303:
                method, data = "GET", None
            url, params = target, None
        raise UpstreamError(f"registry {host}: more than {self._max_redirects} redirects")

    def _once(
        self,
        subject: str,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None,
        params: Mapping[str, str] | None,
        deadline: Deadline,
        reach: Reach,
        kind: str,
    ) -> requests.Response:
        """One HTTP exchange, no redirects, under ``deadline`` and ``reach``.

        ``kind`` names what a refused address was ("redirect", "token realm").
        """
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _deadline_error(subject, deadline, host)
        try:
            with hop(deadline, public_only=reach is Reach.PUBLIC_ONLY):
                return self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    params=params,
                    # Connecting may not outlast the deadline; reads are cut
                    # at the deadline by its watchdog.
                    timeout=(min(self._timeout, remaining), self._timeout),
                    allow_redirects=False,
                    stream=True,
                )
        except requests.RequestException as e:
            raise self._translate(
                e, subject, host, f"{method} {_shown(url)}", deadline, kind
            ) from e
        except ValueError as e:
            # requests parses a redirect's Location even when not following it,
            # and urllib raises ValueError on e.g. "https://[x".
            log.warning("%s: %s %s: unusable answer: %r", subject, method, _shown(url), e)
            raise UpstreamError(
                f"{subject} sent an answer we cannot use",
                detail={"registry": host, "reason": "invalid-response"},
            ) from e

    def _translate(
        self,
        e: BaseException,
        subject: str,
        host: str,
        doing: str,
        deadline: Deadline,
        kind: str,
    ) -> UpstreamError:
        # The details (addresses, ports, errno text) go to our log only.
        log.warning("%s: %s failed: %r", subject, doing, e)
        if deadline.expired or deadline.remaining() < _SLACK_S:
            return _deadline_error(subject, deadline, host)
        if _caused_by(e, AddressRefused):
            target = urlsplit(doing.partition(" ")[2])
            return _refused(f"registry {host}", kind, target, host)
        if isinstance(e, requests.exceptions.SSLError):
            return UpstreamError(
                f"{subject}: TLS verification failed", detail={"registry": host, "reason": "tls"}
            )
        if isinstance(e, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            # Connect and read timeouts alike: the caller sees a 504, not a 502.
            return GatewayTimeout(
                f"{subject} timed out after {self._timeout:g}s",
                detail={"registry": host, "reason": "timeout"},
            )
        return UpstreamError(
            f"{subject} is unreachable", detail={"registry": host, "reason": "unreachable"}
        )

    def _fetch_token(
        self,
        host: str,
        realm: str,
        params: Mapping[str, str],
        creds: Credentials | None,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        """GET a token realm of ``host``: ``(status, at most max_bytes of body)``.

        Raises:
            GatewayTimeout: the realm did not answer in time.
            UpstreamError: the realm's scheme or host is refused, it is not
                configured to receive ``host``'s username and password, or it
                is unreachable.
        """
        subject = f"token endpoint of {host}"
        base, parts = urlsplit(self.base_url(host)), urlsplit(realm)
        if not self.url_allowed(realm):
            # A realm over plain HTTP would leak our credentials.
            raise UpstreamError(
                f"registry {host} names a token realm we may not use: {_shown(realm)!r}"
            )
        configured = creds.auth_hosts if creds is not None else frozenset()
        reach = self._hosts.realm_reach(base, parts, configured)
        if reach is Reach.REFUSED:
            raise _refused(f"registry {host}", "token realm", parts, host)
        headers = {"Accept": "application/json"}
        basic = creds.basic() if creds is not None else None
        if basic is not None:
            if not same_host(parts, base) and not set(host_names(parts)) & configured:
                raise UpstreamError(
                    f"registry {host}: its token realm {host_names(parts)[0]} may not receive "
                    f"the credentials of {host}; list it in auth_hosts of {host} in the "
                    "registry credentials file",
                    detail={"registry": host, "reason": "realm-not-configured"},
                )
            headers["Authorization"] = basic
        with Deadline(self._token_deadline_s) as deadline:
            resp = self._once(
                subject, host, "GET", realm, headers, None, params, deadline, reach, "token realm"
            )
            with resp:
                try:
                    body = resp.raw.read(max_bytes, decode_content=True)
                except (urllib3.exceptions.HTTPError, OSError) as e:
                    doing = f"GET {_shown(realm)}"
                    raise self._translate(e, subject, host, doing, deadline, "token realm") from e
                if deadline.expired:
                    raise _deadline_error(subject, deadline, host)
                return resp.status_code, body

    def iter_body(
        self,
        resp: requests.Response,
        host: str,
        deadline: Deadline,
        *,
        min_bytes_per_s: int | None = None,
        grace_s: float = 0.0,
    ) -> Iterator[bytes]:
        """The raw (not content-decoded) body in chunks, failures translated.

        With ``min_bytes_per_s``, the body must keep up with that rate once
        ``grace_s`` seconds have passed: a blob that declares gigabytes gets a
        long deadline, and this stops a trickle long before it.

        Raises:
            GatewayTimeout: if the host stops sending mid-body for longer than
                the timeout, falls below the minimum rate, or the deadline passes.
            UpstreamError: if the connection breaks mid-body.
        """
        subject = f"registry {host}"
        start, received = time.monotonic(), 0
        try:
            while True:
                # read1: return what one receive brought, so that the clock is
                # looked at after every receive, not after each full megabyte.
                # Digests cover the bytes as stored: never undo a Content-Encoding.
                chunk = resp.raw.read1(_CHUNK, decode_content=False)
                if deadline.expired:
                    raise _deadline_error(subject, deadline, host)
                if not chunk:
                    break
                received += len(chunk)
                late = time.monotonic() - start - grace_s
                if min_bytes_per_s is not None and late > 0 and received < late * min_bytes_per_s:
                    raise GatewayTimeout(
                        f"{subject} sent a download slower than {min_bytes_per_s} bytes/s",
                        detail={"registry": host, "reason": "too-slow"},
                    )
                yield chunk
        except (urllib3.exceptions.TimeoutError, TimeoutError) as e:
            log.warning("%s: download stalled: %r", subject, e)
            if deadline.expired:
                raise _deadline_error(subject, deadline, host) from e
            raise GatewayTimeout(
                f"{subject} stalled mid-download for over {self._timeout:g}s",
                detail={"registry": host, "reason": "timeout"},
            ) from e
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
            log.warning("%s: download broke off: %r", subject, e)
            if deadline.expired:
                raise _deadline_error(subject, deadline, host) from e
            raise UpstreamError(
                f"{subject} broke off a download", detail={"registry": host, "reason": "broken"}
            ) from e
        # The watchdog's shutdown can also look like a clean end of the stream.
        if deadline.expired:
            raise _deadline_error(subject, deadline, host)

    def read_capped(
        self, resp: requests.Response, host: str, cap: int, deadline: Deadline
    ) -> bytes | None:
        """The whole body, or None if it exceeds ``cap`` bytes.

        Raises:
            GatewayTimeout: if the host stalls mid-body or the deadline passes.
            UpstreamError: if the connection breaks mid-body.
        """
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            return None
        buf = bytearray()
        for chunk in self.iter_body(resp, host, deadline):
            buf += chunk
            if len(buf) > cap:
                return None
        return bytes(buf)
