# SPDX-License-Identifier: Apache-2.0
"""The HTTP client of the server API (urllib3) and the spool senders built on it.

urllib3 directly rather than requests: requests adds nothing this client uses
(no redirects, no cookies, no auth helpers) and costs the agent about 4 MB of
resident memory in imports (requests, charset_normalizer, idna).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import certifi
import urllib3

from agent.report import ContainerReport, Violation
from agent.server._models import (
    AttestationPage,
    AttestationRef,
    ClientLimits,
    IssuedImage,
    JobAccepted,
    Registration,
    ServerKey,
    ViolationReceipt,
)
from agent.server._parse import (
    batch_idempotency_key,
    error_from_response,
    loads_strict,
    parse_attestation_page,
    parse_issue_response,
    parse_keys,
    parse_registration,
    parse_violation_receipt,
)
from agent.spool import SpoolEntry
from attestor import errors
from attestor.digests import parse_digest, sha256_hex

__all__ = ["ServerClient", "report_sender", "violation_sender"]

_CHUNK = 64 * 1024
#: Connections kept per host, as requests kept (its pool_maxsize): the agent's
#: threads (main loop, deliverers, feed poller) each hold one at a time.
_POOL_SIZE = 10


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerClient:
    """Talks to one attestor server with one agent token.

    Plain ``http://`` is accepted for loopback hosts only, unless
    ``unsafe_allow_plain_http`` is set: the bearer token would cross the
    network in clear.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        limits: ClientLimits | None = None,
        unsafe_allow_plain_http: bool = False,
        user_agent: str = "attestor-agent",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigError(f"server URL must be http(s)://host[:port], got {base_url!r}")
        if parts.scheme == "http" and not (unsafe_allow_plain_http or _is_loopback(parts.hostname)):
            raise errors.ConfigError(
                f"refusing plain http to {parts.hostname}: use https or unsafe_allow_plain_http"
            )
        if not token:
            raise errors.ConfigError("agent token must not be empty")
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._limits = limits or ClientLimits()
        # urllib3 reads no proxy, CA bundle or ~/.netrc from the environment:
        # where the token goes is decided by configuration alone. The default
        # CAs are certifi's, as they were with requests.
        self._pool = urllib3.PoolManager(
            maxsize=_POOL_SIZE,
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
            ca_certs=(ca_bundle or certifi.where()) if verify_tls else None,
            retries=False,
        )
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.clear()

    # -- transport: the seam endpoint modules of this package send through ----

    @property
    def limits(self) -> ClientLimits:
        """The byte and page caps this client reads answers with."""
        return self._limits

    def request(
        self,
        method: str,
        path: str,
        *,
        cap: int,
        params: Mapping[str, str] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One exchange, as :meth:`exchange`, without the answer's headers.

        Raises:
            Unavailable: the server is unreachable or broke off.
            UpstreamError: a redirect, an answer over ``cap`` or a TLS failure.
            Error: the class matching a problem answer.
        """
        status, content, _ = self.exchange(
            method, path, cap=cap, params=params, body=body, headers=headers
        )
        return status, content

    def exchange(
        self,
        method: str,
        path: str,
        *,
        cap: int,
        params: Mapping[str, str] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        not_modified: bool = False,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """The one transport: capped reads, no redirects, problem answers raised.

        With ``not_modified`` a 304 is an answer (empty body), not an error:
        the conditional GET of the revocation feed needs it and the headers.

        Raises:
            Unavailable: the server is unreachable or broke off.
            UpstreamError: a redirect, an answer over ``cap`` or a TLS failure.
            Error: the class matching a problem answer.
        """
        sent = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        where = f"{method} {path}"
        url = self._base + path
        if params:
            url += "?" + urlencode(params)
        try:
            resp = self._pool.request(
                method,
                url,
                body=data,
                headers=sent,
                timeout=self._timeout,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.SSLError as e:
            raise errors.UpstreamError(f"server TLS failed for {where}: {e}") from e
        except urllib3.exceptions.HTTPError as e:
            raise errors.Unavailable(f"server unreachable for {where}: {type(e).__name__}") from e
        reusable = False
        try:
            if not_modified and resp.status == 304:
                reusable = True  # a 304 has no body
                return 304, b"", resp.headers
            ok = 200 <= resp.status < 300
            limit = cap if ok else self._limits.max_problem_bytes
            content = self._read(resp, limit, where)
            reusable = content is not None
            if not ok:
                if 300 <= resp.status < 400:
                    raise errors.UpstreamError(f"server redirected {where} ({resp.status})")
                raise error_from_response(
                    resp.status, content, retry_after=resp.headers.get("Retry-After")
                )
            if content is None:
                raise errors.UpstreamError(f"server answer to {where} over {cap} bytes")
            return resp.status, content, resp.headers
        finally:
            # A connection goes back to the pool only with its answer read to
            # the end; one cut short (over the cap, broken off) is closed.
            if reusable:
                resp.drain_conn()
            else:
                resp.close()
            resp.release_conn()

    def _read(self, resp: urllib3.BaseHTTPResponse, cap: int, where: str) -> bytes | None:
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            return None
        buf = bytearray()
        try:
            for chunk in resp.stream(_CHUNK):
                buf += chunk
                if len(buf) > cap:
                    return None
        except urllib3.exceptions.HTTPError as e:
            raise errors.Unavailable(f"server broke off {where}: {type(e).__name__}") from e
        return bytes(buf)

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        status, content = self.request(method, path, cap=self._limits.max_json_bytes, **kwargs)
        return status, loads_strict(content, what) if content else None

    # -- endpoints --------------------------------------------------------

    def register(
        self,
        *,
        hostname: str,
        mode: Literal["node", "sidecar"],
        version: str,
        namespaces: Sequence[str],
    ) -> Registration:
        """``POST /v1/agents/register``: the agent id bound to the token, and the keys.

        Raises:
            Unauthorized: the token was refused.
            Unavailable: the server is unreachable.
            UpstreamError: a malformed answer.
        """
        body: dict[str, object] = {
            "hostname": hostname,
            "mode": mode,
            "version": version,
            "namespaces": list(namespaces),
        }
        return parse_registration(
            self._json("POST", "/v1/agents/register", "registration", body=body)[1]
        )

    def heartbeat(
        self, agent_id: str, *, containers: int, layers: int, pending_violations: int
    ) -> None:
        """``POST /v1/agents/{agent_id}/heartbeat``.

        Raises:
            Unavailable: the server is unreachable.
            Error: the class matching the server's problem answer.
        """
        body = {
            "containers": containers,
            "layers": layers,
            "pending_violations": pending_violations,
        }
        self.request(
            "POST", f"/v1/agents/{quote(agent_id, safe='')}/heartbeat", cap=4096, body=body
        )

    def keys(self) -> tuple[ServerKey, ...]:
        """``GET /v1/keys``.

        Raises:
            Unavailable: the server is unreachable.
            UpstreamError: a malformed answer.
        """
        return parse_keys(self._json("GET", "/v1/keys", "key list")[1])

    def key_set(self) -> bytes:
        """``GET /v1/keys/set``: the signed key set (DSSE envelope JSON, unverified).

        Raises:
            Unavailable: the server is unreachable.
            UpstreamError: the answer is over the cap.
            Error: the class matching the server's problem answer.
        """
        return self.request("GET", "/v1/keys/set", cap=self._limits.max_json_bytes)[1]

    def attestations(
        self, layer_digest: str, *, status: str = "valid", cursor: str | None = None
    ) -> AttestationPage:
        """``GET /v1/attestations?layer_digest=...&status=...``: one page.

        Raises:
            InvalidInput: if ``layer_digest`` is not ``sha256:<hex>``.
            Unavailable: the server is unreachable.
            UpstreamError: a malformed answer.
        """
        parse_digest(layer_digest)
        params = {"layer_digest": layer_digest, "status": status}
        if cursor is not None:
            params["cursor"] = cursor
        doc = self._json("GET", "/v1/attestations", "attestation page", params=params)[1]
        return parse_attestation_page(doc)

    def iter_attestations(
        self, layer_digest: str, *, status: str = "valid"
    ) -> Iterator[AttestationRef]:
        """Every page of :meth:`attestations`, up to ``max_pages``.

        Raises:
            UpstreamError: more than ``max_pages`` pages, or a malformed answer.
            Unavailable: the server is unreachable.
        """
        cursor: str | None = None
        for _ in range(self._limits.max_pages):
            page = self.attestations(layer_digest, status=status, cursor=cursor)
            yield from page.items
            if not page.next:
                return
            cursor = page.next
        raise errors.UpstreamError(f"more than {self._limits.max_pages} pages of attestations")

    def envelope(self, attestation_id: str) -> bytes:
        """``GET /v1/attestations/{id}/envelope``: the DSSE envelope bytes (unverified).

        Raises:
            NotFound: no such attestation.
            Unavailable: the server is unreachable.
            UpstreamError: the answer is over the cap.
        """
        path = f"/v1/attestations/{quote(attestation_id, safe='')}/envelope"
        return self.request("GET", path, cap=self._limits.max_envelope_bytes)[1]

    def request_attestation(self, image: str) -> IssuedImage | JobAccepted:
        """``POST /v1/attestations`` for ``<registry>/<repo>@sha256:<hex>``.

        Raises:
            PolicyDenied: the server's policy refused the image (``detail['reasons']``).
            UpstreamError: the server could not fetch the image (its reason is the message).
            Unavailable: the server is unreachable.
        """
        status, doc = self._json("POST", "/v1/attestations", "issue answer", body={"image": image})
        return parse_issue_response(status, doc)

    def manifest(self, sha256: str) -> bytes:
        """``GET /v1/manifests/sha256:<hex>``: the canonical manifest bytes, hash-checked.

        Raises:
            InvalidInput: if ``sha256`` is not a sha256 (hex or ``sha256:<hex>``).
            VerificationError: the bytes do not hash to ``sha256``.
            NotFound: the server has no such manifest.
            Unavailable: the server is unreachable.
        """
        hex_ = parse_digest(sha256 if sha256.startswith("sha256:") else "sha256:" + sha256)
        data = self.request(
            "GET", f"/v1/manifests/sha256:{hex_}", cap=self._limits.max_manifest_bytes
        )[1]
        if sha256_hex(data) != hex_:
            raise errors.VerificationError(
                f"manifest from server hashes to {sha256_hex(data)}, expected {hex_}"
            )
        return data

    def post_violations(
        self, violations: Sequence[Violation], *, idempotency_key: str | None = None
    ) -> ViolationReceipt:
        """``POST /v1/violations``; the server dedupes by violation id.

        Raises:
            InvalidInput: the server refused the batch as malformed.
            Unavailable: the server is unreachable (keep the records, retry).
            Error: the class matching the server's problem answer.
        """
        key = idempotency_key or batch_idempotency_key(v.id for v in violations)
        body = {"violations": [v.to_dict() for v in violations]}
        doc = self._json(
            "POST", "/v1/violations", "violation receipt", body=body,
            headers={"Idempotency-Key": key},
        )[1]  # fmt: skip
        return parse_violation_receipt(doc)

    def post_report(self, report: ContainerReport) -> None:
        """``POST /v1/reports`` (202).

        Raises:
            InvalidInput: the server refused the report as malformed.
            Unavailable: the server is unreachable.
        """
        self.request("POST", "/v1/reports", cap=self._limits.max_json_bytes, body=report.to_dict())


def violation_sender(client: ServerClient) -> Callable[[Sequence[SpoolEntry]], None]:
    """A :class:`agent.spool.Deliverer` sender for spooled ``Violation.to_dict()`` records.

    A record that no longer parses raises ``InvalidInput``, so the deliverer
    sets it aside instead of blocking the queue.
    """

    def send(batch: Sequence[SpoolEntry]) -> None:
        client.post_violations([Violation.from_dict(dict(e.record)) for e in batch])

    return send


def report_sender(client: ServerClient) -> Callable[[Sequence[SpoolEntry]], None]:
    """A sender for spooled ``ContainerReport.to_dict()`` records (one POST each)."""

    def send(batch: Sequence[SpoolEntry]) -> None:
        for entry in batch:
            client.post_report(ContainerReport.from_dict(dict(entry.record)))

    return send
