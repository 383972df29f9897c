# SPDX-License-Identifier: Apache-2.0
"""The signed revocation feed for agents: page building, signing, verification.

Spec: ``docs/revocation-feed.md``; payload schema:
``schemas/revocation-feed-page.schema.json``. A page is deterministic JSON
carried in a DSSE envelope of type :data:`FEED_PAYLOAD_TYPE`, signed by the
server's active key. The agent checks, in order: the envelope, the payload
type, the signature (with keys not revoked outright), the payload, the feed id,
cursor continuity (no rollback) and freshness (no replay of an old page).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream

from attestor.dsse import Envelope, EnvelopeLimits, parse_envelope
from attestor.errors import Conflict, InvalidInput, TooLarge, VerificationError
from attestor.json_strict import loads_strict
from attestor.revocation.match import RevocationSet
from attestor.revocation.model import Revocation, format_time, parse_time
from attestor.schemas import validate
from attestor.signing.dsse import sign_envelope
from attestor.verify.keys import TrustedKey

__all__ = [
    "FEED_PAYLOAD_TYPE",
    "FeedLimits",
    "FeedPage",
    "build_feed_page",
    "feed_epoch",
    "feed_etag",
    "parse_feed_page",
    "sign_feed_page",
    "verify_feed_page",
]

#: DSSE payloadType of a feed page. Distinct from in-toto's, so the PAE keeps a
#: feed signature from ever passing as an attestation signature, and back.
#: v2: attestation targets name the attestation by ``pae_sha256`` (v1 used a
#: hash of the envelope JSON); an agent that only knows v1 refuses v2 pages by
#: this type instead of misreading them.
FEED_PAYLOAD_TYPE: Final = "application/vnd.attestor.revocation-feed.v2+json"
#: Leads every ETag; it changes with the page format, so an ETag never names
#: pages of two formats.
_ETAG_VERSION: Final = "rf2"

_MAX_CURSOR: Final = 2**63 - 1
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FEED_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class FeedLimits:
    """Caps applied to untrusted feed pages (and to what the server builds)."""

    #: Largest accepted page payload, in bytes.
    max_page_bytes: int = 4 * 1024 * 1024
    #: Most revocations in one page (the schema's maxItems).
    max_revocations: int = 10_000


_DEFAULT_LIMITS: Final = FeedLimits()
_DEFAULT_ENVELOPE_LIMITS: Final = EnvelopeLimits()


@dataclass(frozen=True)
class FeedPage:
    """A parsed (and, from :func:`verify_feed_page`, verified) feed page."""

    feed_id: str
    #: The cursor the page starts after (the agent's cursor).
    since: int
    #: The agent's next cursor: the last sequence in the page, or ``since``.
    next: int
    #: The highest sequence the server had when it built the page.
    latest: int
    #: ``next == latest``: the agent is caught up; otherwise fetch ``since=next`` now.
    complete: bool
    issued_at: datetime
    revocations: tuple[Revocation, ...]
    #: The exact signed payload bytes.
    payload: bytes
    #: keyid of the trusted key that verified the page; None when only parsed.
    signed_by: str | None = None


def _cursor(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_CURSOR:
        raise InvalidInput(f"{what}: must be an integer in 0..2^63-1, got {str(value)[:40]!r}")
    return value


def _server_id(value: object) -> str:
    # The schema's feed_id pattern; checked here so we never sign what agents reject.
    if not isinstance(value, str) or _FEED_ID_RE.fullmatch(value) is None:
        raise InvalidInput(f"server_id: malformed {str(value)[:80]!r}")
    return value


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_feed_page(
    revocations: Sequence[Revocation],
    *,
    since: int,
    limit: int,
    now: datetime,
    server_id: str,
    latest: int | None = None,
) -> bytes:
    """The deterministic JSON payload of one feed page.

    Args:
        revocations: revocations after ``since`` (others are ignored). When
            ``latest`` is None they must be ALL of them, since the highest one
            given is taken as the server's latest.
        since: the agent's cursor (0 for "from the start").
        limit: most revocations in the page (1..``FeedLimits.max_revocations``).
        now: written as ``issued_at``; pass :func:`feed_epoch` of the time so that
            pages, and their ETag, stay the same within one refresh interval.
        server_id: the feed id agents pin.
        latest: the server's highest sequence, read before the rows (a cheap
            query); revocations above it are left for the next page.

    Raises:
        InvalidInput: on a bad argument or duplicate sequences.
        Conflict: if ``since`` is ahead of ``latest`` (the agent followed another
            feed, or the server lost history).
    """
    since = _cursor(since, "since")
    if type(limit) is not int or not 1 <= limit <= _DEFAULT_LIMITS.max_revocations:
        raise InvalidInput(f"limit: must be in 1..{_DEFAULT_LIMITS.max_revocations}, got {limit}")
    issued_at = format_time(now)
    feed_id = _server_id(server_id)
    after = sorted((r for r in revocations if r.sequence > since), key=lambda r: r.sequence)
    for a, b in zip(after, after[1:], strict=False):
        if a.sequence == b.sequence:
            raise InvalidInput(f"two revocations with sequence {a.sequence}")
    if latest is None:
        latest = after[-1].sequence if after else since
    latest = _cursor(latest, "latest")
    if latest < since:
        raise Conflict(f"cursor {since} is ahead of the feed's latest sequence {latest}")
    # Rows committed after the server read `latest` wait for the next page: the
    # page must stay a function of (since, latest, limit) for its ETag.
    page = [r for r in after if r.sequence <= latest][:limit]
    next_cursor = page[-1].sequence if page else since
    return _dumps(
        {
            "feed_id": feed_id,
            "since": since,
            "next": next_cursor,
            "latest": latest,
            "complete": next_cursor == latest,
            "issued_at": issued_at,
            "revocations": [r.to_dict() for r in page],
        }
    )


def sign_feed_page(page_bytes: bytes, signer: Signer, keyid: str) -> Envelope:
    """Wrap a page in a DSSE envelope of type :data:`FEED_PAYLOAD_TYPE`.

    Raises:
        UpstreamError: if the signer fails.
    """
    return sign_envelope(page_bytes, signer, keyid=keyid, payload_type=FEED_PAYLOAD_TYPE)


def feed_epoch(now: datetime, interval: timedelta) -> datetime:
    """``now`` rounded down to a multiple of ``interval`` since the Unix epoch.

    Raises:
        InvalidInput: if ``now`` is naive or ``interval`` is under one second.
    """
    if now.tzinfo is None:
        raise InvalidInput("now: must be a timezone-aware datetime")
    if interval < timedelta(seconds=1):
        raise InvalidInput(f"interval: must be at least 1 s, got {interval}")
    step = int(interval.total_seconds())
    elapsed = int((now - _UNIX_EPOCH).total_seconds())
    return _UNIX_EPOCH + timedelta(seconds=elapsed - elapsed % step)


def feed_etag(
    *, server_id: str, since: int, latest: int, limit: int, keyid: str, issued_at: datetime
) -> str:
    """The strong ETag of the page these inputs build, without building it.

    History is append-only and sequences become visible in order, so these
    inputs fix the page bytes; the server keeps the signed envelope per ETag so
    that the representation (ECDSA signatures are randomized) stays the same.

    Raises:
        InvalidInput: if ``issued_at`` is naive.
    """
    material = json.dumps(
        [_ETAG_VERSION, server_id, since, latest, limit, keyid, format_time(issued_at)],
        separators=(",", ":"),
    ).encode()
    return f'"{_ETAG_VERSION}-' + hashlib.sha256(material).hexdigest()[:40] + '"'


def parse_feed_page(payload: bytes, *, limits: FeedLimits = _DEFAULT_LIMITS) -> FeedPage:
    """Parse page bytes strictly; no signature is checked here.

    Raises:
        InvalidInput: if the bytes are not a page that meets the schema and the
            cursor invariants (see the schema's description).
        TooLarge: if the payload or the number of revocations is over a cap.
    """
    if not isinstance(payload, bytes):
        raise InvalidInput(f"feed page: expected bytes, got {type(payload).__name__}")
    # A duplicate member would let two parsers read one signed page differently.
    doc = loads_strict(payload, what="feed page", max_bytes=limits.max_page_bytes)
    if isinstance(doc, dict) and isinstance(doc.get("revocations"), list):
        count = len(doc["revocations"])
        if count > limits.max_revocations:
            raise TooLarge(f"feed page: {count} revocations, over {limits.max_revocations}")
    validate(doc, "revocation-feed-page")
    if not isinstance(doc, dict):  # the schema requires an object; keeps mypy honest
        raise InvalidInput("feed page: expected a JSON object")
    since = _cursor(doc["since"], "since")
    next_cursor = _cursor(doc["next"], "next")
    latest = _cursor(doc["latest"], "latest")
    revocations = tuple(Revocation.from_dict(r) for r in doc["revocations"])
    if not since <= next_cursor <= latest:
        raise InvalidInput(
            f"feed page: need since <= next <= latest, got {since}/{next_cursor}/{latest}"
        )
    previous = since
    for r in revocations:
        if not previous < r.sequence <= next_cursor:
            raise InvalidInput(
                f"feed page: sequence {r.sequence} out of order or outside ({since}, {next_cursor}]"
            )
        previous = r.sequence
    if previous != next_cursor:
        raise InvalidInput(f"feed page: next is {next_cursor}, the page ends at {previous}")
    if doc["complete"] is not (next_cursor == latest):
        raise InvalidInput(f"feed page: complete must say whether next == latest ({latest})")
    return FeedPage(
        feed_id=doc["feed_id"],
        since=since,
        next=next_cursor,
        latest=latest,
        complete=doc["complete"],
        issued_at=parse_time(doc["issued_at"], "issued_at"),
        revocations=revocations,
        payload=payload,
    )


def verify_feed_page(
    envelope: bytes,
    keys: Sequence[TrustedKey],
    *,
    expected_since: int,
    now: datetime,
    max_age: timedelta,
    expected_feed_id: str | None = None,
    known_latest: int = 0,
    revocations: RevocationSet | None = None,
    max_clock_skew: timedelta = timedelta(minutes=5),
    limits: FeedLimits = _DEFAULT_LIMITS,
    envelope_limits: EnvelopeLimits = _DEFAULT_ENVELOPE_LIMITS,
) -> FeedPage:
    """Verify a signed feed page for an agent whose cursor is ``expected_since``.

    Args:
        envelope: the response body (DSSE envelope JSON).
        keys: the server keys the agent trusts (from ``GET /v1/keys``).
        expected_since: the agent's cursor; the page must start exactly there.
        now: the agent's current time.
        max_age: oldest acceptable ``issued_at`` (bounds replay of old pages).
        expected_feed_id: the pinned feed id, once the agent has one.
        known_latest: the highest ``latest`` the agent has seen; lower is a rollback.
        revocations: the agent's current set; keys it revokes outright are not
            trusted to sign pages.
        max_clock_skew: how far in the future ``issued_at`` may be.
        limits: caps on the page.
        envelope_limits: caps on the envelope.

    Raises:
        InvalidInput: if the envelope itself is malformed.
        VerificationError: for a wrong payload type, a bad or untrusted
            signature, a malformed signed page, another feed, a cursor that does
            not continue the agent's (or rolls back), or a stale or future page.
    """
    if now.tzinfo is None:
        raise InvalidInput("now: must be a timezone-aware datetime")
    # Imported here: attestor.verify imports attestor.revocation.match, whose
    # package imports this module, so a module-level import would be a cycle.
    from attestor.verify import Verifier

    parsed = parse_envelope(envelope, limits=envelope_limits)
    if parsed.payload_type != FEED_PAYLOAD_TYPE:
        raise VerificationError(
            f"payloadType {parsed.payload_type[:80]!r} is not {FEED_PAYLOAD_TYPE!r}"
        )
    usable: list[TrustedKey] = []
    for k in keys:
        revoked = revocations is not None and revocations.is_key_revoked(k.keyid)
        # The same key listed twice counts once (the Verifier refuses duplicates).
        if not revoked and all(k.public_key != u.public_key for u in usable):
            usable.append(k)
    if not usable:
        raise VerificationError("no trusted, unrevoked key to verify the feed page with")
    # The signature is checked by the one verifier, as every other signed document.
    signed = Verifier(keys=usable, limits=envelope_limits).verify_payload(
        parsed, payload_type=FEED_PAYLOAD_TYPE
    )
    try:
        page = parse_feed_page(signed.payload, limits=limits)
    except InvalidInput as e:
        raise VerificationError(f"signed feed page is invalid: {e.message}") from None
    if expected_feed_id is not None and page.feed_id != expected_feed_id:
        raise VerificationError(f"feed id {page.feed_id!r} is not the pinned {expected_feed_id!r}")
    if page.since != expected_since:
        raise VerificationError(
            f"page starts after cursor {page.since}, the agent's cursor is {expected_since}"
        )
    if page.latest < known_latest:
        raise VerificationError(
            f"rollback: page says latest {page.latest}, already saw {known_latest}"
        )
    if page.issued_at > now + max_clock_skew:
        raise VerificationError(f"page issued in the future ({format_time(page.issued_at)})")
    if now - page.issued_at > max_age:
        raise VerificationError(
            f"stale page: issued {format_time(page.issued_at)}, older than {max_age}"
        )
    return replace(page, signed_by=signed.keys[0])
