# SPDX-License-Identifier: Apache-2.0
"""``GET /v1/revocations/feed``: one signed feed page, or 304 (spec: docs/revocation-feed.md).

The body is returned as bytes and NOT trusted here: the caller verifies it with
:func:`attestor.revocation.verify_feed_page`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.server._client import ServerClient
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
    headers = {"Accept": _ACCEPT}
    if etag is not None:
        headers["If-None-Match"] = etag
    where = f"GET {_PATH}"
    status, content, answered = client.exchange(
        "GET",
        _PATH,
        cap=client.limits.max_envelope_bytes,
        params={"since": str(since), "limit": str(limit)},
        headers=headers,
        # A 304 we did not ask for (no If-None-Match) stays an error.
        not_modified=etag is not None,
    )
    if status == 304:
        return FeedResponse(body=None, etag=None)
    if status != 200:
        raise errors.UpstreamError(f"server answered {where} with {status}, expected 200")
    return FeedResponse(body=content, etag=answered.get("ETag"))
