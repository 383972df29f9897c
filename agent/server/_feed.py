# SPDX-License-Identifier: Apache-2.0
"""``GET /v1/revocations/feed``: one signed feed page, or 304 (spec: docs/revocation-feed.md).

The body is returned as bytes and NOT trusted here: the caller verifies it with
:func:`attestor.revocation.verify_feed_page`.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from agent.server._client import ServerClient
from agent.server._parse import error_from_response
from attestor import errors

__all__ = ["FeedResponse", "fetch_revocation_feed"]

_PATH = "/v1/revocations/feed"
_ACCEPT = "application/vnd.dsse.envelope.v1+json, application/problem+json;q=0.5"


@dataclass(frozen=True)
class FeedResponse:
    """The server's answer: a page (unverified envelope bytes) or "not modified"."""

    #: The DSSE envelope JSON; None when the server answered 304.
    body: bytes | None
    #: The ETag of the page (None on 304 or when the server sent none).
    etag: str | None

    @property
    def not_modified(self) -> bool:
        """The server answered 304 to our If-None-Match (unsigned: see the spec)."""
        return self.body is None


def fetch_revocation_feed(
    client: ServerClient, *, since: int, limit: int, etag: str | None = None
) -> FeedResponse:
    """Fetch the feed page that starts after cursor ``since``.

    Args:
        client: the agent's server client (its token, TLS settings and caps).
        since: the agent's cursor (0 at first).
        limit: most revocations per page (part of the ETag: keep it constant).
        etag: the ETag of the page last received for this ``since``, if any.

    Raises:
        Conflict: the server says ``since`` is ahead of its feed (409).
        Unavailable: the server is unreachable or broke off.
        UpstreamError: a redirect, an oversized page or a TLS failure.
        Error: the class matching any other problem answer.
    """
    if since < 0 or limit < 1:
        raise errors.InvalidInput(f"feed: need since >= 0 and limit >= 1, got {since}/{limit}")
    # ServerClient._request turns every 3xx into an error and drops the headers,
    # so this call uses its session, settings and capped reader directly; they
    # belong to the same package and keep one transport configuration.
    headers = dict(client._headers)
    headers["Accept"] = _ACCEPT
    if etag is not None:
        headers["If-None-Match"] = etag
    where = f"GET {_PATH}"
    try:
        resp = client._session.get(
            client._base + _PATH,
            params={"since": str(since), "limit": str(limit)},
            headers=headers,
            timeout=client._timeout,
            verify=client._verify,
            allow_redirects=False,
            stream=True,
        )
    except requests.exceptions.SSLError as e:
        raise errors.UpstreamError(f"server TLS failed for {where}: {e}") from e
    except requests.RequestException as e:
        raise errors.Unavailable(f"server unreachable for {where}: {type(e).__name__}") from e
    with resp:
        status = resp.status_code
        if status == 304:
            if etag is None:
                raise errors.UpstreamError(f"server answered {where} with 304 unasked")
            return FeedResponse(body=None, etag=None)
        cap = (
            client._limits.max_envelope_bytes if status == 200 else client._limits.max_problem_bytes
        )
        content = client._read(resp, cap, where)
        if status != 200:
            if 300 <= status < 400:
                raise errors.UpstreamError(f"server redirected {where} ({status})")
            raise error_from_response(status, content, retry_after=resp.headers.get("Retry-After"))
        if content is None:
            raise errors.UpstreamError(f"server answer to {where} over {cap} bytes")
        return FeedResponse(body=content, etag=resp.headers.get("ETag"))
