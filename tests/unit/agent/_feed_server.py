# SPDX-License-Identifier: Apache-2.0
"""A tiny feed server on 127.0.0.1 that follows docs/revocation-feed.md ("Server")
with the core's build/sign functions, until the real endpoint can be used here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from securesystemslib.signer import CryptoSigner

from attestor.revocation import Revocation, SubjectTarget, Target
from attestor.revocation_feed import build_feed_page, feed_epoch, feed_etag, sign_feed_page
from attestor.verify import TrustedKey

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
REFRESH = timedelta(minutes=5)


def trusted(signer: CryptoSigner) -> TrustedKey:
    return TrustedKey.from_pem(signer.public_key.keyval["public"], signer.public_key.keyid)


def rev(sequence: int, target: Target | None = None, *, id: str | None = None) -> Revocation:
    return Revocation(
        id=id or f"rev-{sequence}",
        sequence=sequence,
        target=target or SubjectTarget("sha256:" + f"{sequence:064x}"),
        reason=f"test {sequence}",
        actor="admin@example.test",
        created_at=T0 + timedelta(seconds=sequence),
    )


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FeedServer:
    """The server's side; tests change its fields between polls."""

    signer: CryptoSigner
    clock: Clock
    feed_id: str = "srv-1"
    revocations: list[Revocation] = field(default_factory=list)
    #: The page time lags behind the clock by this much (a stale or replaying server).
    lag: timedelta = timedelta(0)
    #: Requests seen: (since, limit, If-None-Match).
    requests: list[tuple[int, int, str | None]] = field(default_factory=list)
    url: str = ""

    def answer(self, since: int, limit: int, inm: str | None) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((since, limit, inm))
        latest = max((r.sequence for r in self.revocations), default=0)
        if since > latest:
            problem = {
                "type": "https://attestor.dev/problems/conflict",
                "status": 409,
                "detail": f"cursor {since} is ahead of {latest}",
            }
            return 409, {"Content-Type": "application/problem+json"}, json.dumps(problem).encode()
        epoch = feed_epoch(self.clock.now - self.lag, REFRESH)
        keyid = self.signer.public_key.keyid
        etag = feed_etag(server_id=self.feed_id, since=since, latest=latest, limit=limit,
                         keyid=keyid, issued_at=epoch)  # fmt: skip
        if inm == etag:
            return 304, {"ETag": etag}, b""
        payload = build_feed_page(self.revocations, since=since, limit=limit, now=epoch,
                                  server_id=self.feed_id, latest=latest)  # fmt: skip
        body = sign_feed_page(payload, self.signer, keyid).to_json()
        return 200, {"ETag": etag, "Content-Type": "application/vnd.dsse.envelope.v1+json"}, body


@contextmanager
def serve(feed: FeedServer) -> Iterator[FeedServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            auth = self.headers.get("Authorization")
            if parts.path != "/v1/revocations/feed" or auth != "Bearer t0ken":
                self.send_response(404)
                self.end_headers()
                return
            status, headers, body = feed.answer(
                int(query["since"][0]), int(query["limit"][0]), self.headers.get("If-None-Match")
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    feed.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield feed
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
