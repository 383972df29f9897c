# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from securesystemslib.signer import CryptoSigner

from attestor.dsse import Envelope
from attestor.errors import Conflict, InvalidInput, VerificationError
from attestor.revocation import KeyTarget, RevocationSet
from attestor.revocation_feed import (
    FEED_PAYLOAD_TYPE,
    build_feed_page,
    feed_epoch,
    feed_etag,
    parse_feed_page,
    sign_feed_page,
    verify_feed_page,
)
from attestor.signing.dsse import sign_envelope
from tests.unit.revocation._helpers import T0, one_of_each, rev, trusted

SERVER = CryptoSigner.generate_ecdsa()
OTHER = CryptoSigner.generate_ed25519()
KEYS = [trusted(SERVER)]
NOW = T0 + timedelta(minutes=10)
REVS = one_of_each()


def page(since=0, limit=100, now=NOW, latest=None, revs=REVS, server_id="srv-1"):
    return build_feed_page(revs, since=since, limit=limit, now=now, server_id=server_id,
                           latest=latest)  # fmt: skip


def signed(payload, signer=SERVER):
    return sign_feed_page(payload, signer, signer.public_key.keyid).to_json()


def verify(envelope, since=0, now=NOW, **kw):
    kw.setdefault("max_age", timedelta(minutes=15))
    return verify_feed_page(envelope, kw.pop("keys", KEYS), expected_since=since, now=now, **kw)


def test_full_sync_in_pages_then_caught_up():
    revset, cursor, latest, pages = RevocationSet(), 0, 0, 0
    while True:
        p = verify(signed(page(since=cursor, limit=3)), since=cursor, known_latest=latest,
                   expected_feed_id="srv-1", revocations=revset)  # fmt: skip
        assert p.signed_by == SERVER.public_key.keyid and p.feed_id == "srv-1"
        revset = revset.with_added(p.revocations)
        cursor, latest, pages = p.next, p.latest, pages + 1
        if p.complete:
            break
    assert pages == 3 and cursor == revset.version == 7 and len(revset) == 7
    empty = verify(signed(page(since=7)), since=7)
    assert (empty.since, empty.next, empty.latest, empty.complete) == (7, 7, 7, True)
    assert empty.revocations == ()


def test_page_bytes_are_deterministic_and_match_the_schema_invariants():
    a = page(since=2, limit=2)
    assert a == page(since=2, limit=2, revs=list(reversed(REVS)))
    doc = json.loads(a)
    assert list(doc) == sorted(doc)
    assert (doc["since"], doc["next"], doc["latest"], doc["complete"]) == (2, 4, 7, False)
    assert [r["sequence"] for r in doc["revocations"]] == [3, 4]
    assert doc["issued_at"] == "2026-03-01T12:10:00Z"
    assert parse_feed_page(a).payload == a


def test_latest_given_by_the_server():
    # The store passes only `limit` rows and the max(sequence) it knows.
    p = json.loads(page(since=0, limit=2, revs=REVS[:2], latest=7))
    assert (p["next"], p["latest"], p["complete"]) == (2, 7, False)
    with pytest.raises(Conflict, match="ahead"):
        page(since=9, latest=7)
    # A row committed after the server read `latest` waits for the next page.
    p = json.loads(page(since=0, latest=5))
    assert (p["next"], p["latest"], p["complete"]) == (5, 5, True)
    with pytest.raises(InvalidInput, match="limit"):
        page(limit=0)
    with pytest.raises(InvalidInput, match="server_id"):
        page(server_id="bad id")
    with pytest.raises(InvalidInput, match="sequence 1"):
        page(revs=[REVS[0], rev(1, KeyTarget("x"))])


def test_envelope_type_and_keys():
    env = sign_feed_page(page(), SERVER, "kid")
    assert env.payload_type == FEED_PAYLOAD_TYPE and env.signatures[0].keyid == "kid"
    # An attestation-typed envelope over the same bytes is not a feed page.
    in_toto = sign_envelope(page(), SERVER, keyid="kid").to_json()
    with pytest.raises(VerificationError, match="payloadType"):
        verify(in_toto)
    with pytest.raises(VerificationError, match="0 of 1"):
        verify(signed(page(), OTHER))
    # A key the agent revoked outright signs nothing any more, pages included.
    revoked = RevocationSet([rev(1, KeyTarget(SERVER.public_key.keyid))])
    with pytest.raises(VerificationError, match="unrevoked key"):
        verify(signed(page()), revocations=revoked)
    with pytest.raises(InvalidInput):
        verify(b"{}")


def test_tampered_payload_fails():
    env = sign_feed_page(page(), SERVER, "kid")
    hidden = json.loads(env.payload)
    hidden["revocations"] = hidden["revocations"][:-1]
    forged = Envelope(env.payload_type, json.dumps(hidden).encode(), env.signatures)
    with pytest.raises(VerificationError, match="0 of 1"):
        verify(forged.to_json())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": 3}, "agent's cursor is 3"),
        ({"expected_feed_id": "srv-2"}, "pinned"),
        ({"known_latest": 8}, "rollback"),
        ({"now": NOW + timedelta(minutes=16)}, "stale"),
        ({"now": NOW - timedelta(minutes=6)}, "future"),
    ],
)
def test_cursor_feed_and_freshness_checks(kwargs, message):
    with pytest.raises(VerificationError, match=message):
        verify(signed(page()), **kwargs)


def test_freshness_edges():
    env = signed(page())
    assert verify(env, now=NOW + timedelta(minutes=15)).next == 7
    assert verify(env, now=NOW - timedelta(minutes=5)).next == 7
    with pytest.raises(InvalidInput, match="timezone-aware"):
        verify(env, now=datetime(2026, 3, 1))


def test_signed_but_inconsistent_page_is_a_verification_error():
    doc = json.loads(page())
    doc["complete"] = False
    with pytest.raises(VerificationError, match="complete"):
        verify(signed(json.dumps(doc).encode()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"next": 6}, "outside"),
        ({"since": 8, "next": 8, "latest": 8}, "out of order"),
        ({"latest": 6}, "since <= next <= latest"),
        ({"since": True}, "since"),
        ({"since": 0.0}, "since"),
        ({"extra": 1}, "extra"),
        ({"issued_at": "2026-03-01 12:00:00Z"}, "issued_at"),
    ],
)
def test_parser_invariants(change, message):
    doc = json.loads(page())
    doc.update(change)
    with pytest.raises(InvalidInput, match=message):
        parse_feed_page(json.dumps(doc).encode())


def test_parser_rejects_duplicates_reordering_and_non_json():
    raw = page()
    with pytest.raises(InvalidInput, match="duplicate"):
        parse_feed_page(raw[:-1] + b',"since":0}')
    doc = json.loads(raw)
    doc["revocations"].reverse()
    with pytest.raises(InvalidInput, match="out of order"):
        parse_feed_page(json.dumps(doc).encode())
    doc = json.loads(raw)
    del doc["revocations"][-1]  # hides sequence 7 but still claims next == 7
    with pytest.raises(InvalidInput, match="next is 7, the page ends at 6"):
        parse_feed_page(json.dumps(doc).encode())
    for bad in (b"\xff", b"[1]", b'{"since": NaN}', b"[" * 100_000, "str"):
        with pytest.raises(InvalidInput):
            parse_feed_page(bad)


def test_epoch_and_etag():
    interval = timedelta(minutes=5)
    e = feed_epoch(datetime(2026, 3, 1, 12, 7, 31, 5, tzinfo=UTC), interval)
    assert e == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert feed_epoch(e, interval) == e
    base = {"server_id": "srv-1", "since": 0, "latest": 7, "limit": 100, "keyid": "k",
            "issued_at": e}  # fmt: skip
    tag = feed_etag(**base)
    assert tag.startswith('"rf2-') and tag.endswith('"') and len(tag) == 46
    assert feed_etag(**base) == tag
    for change in ({"since": 1}, {"latest": 8}, {"limit": 50}, {"keyid": "k2"},
                   {"server_id": "srv-2"}, {"issued_at": e + interval}):  # fmt: skip
        assert feed_etag(**{**base, **change}) != tag
    with pytest.raises(InvalidInput):
        feed_epoch(datetime(2026, 1, 1), interval)
    with pytest.raises(InvalidInput):
        feed_epoch(e, timedelta(0))
