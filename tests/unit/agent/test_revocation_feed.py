# SPDX-License-Identifier: Apache-2.0
"""agent.revocation.FeedFollower against signed pages from a local feed server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from agent.revocation import STATE_FILE, FeedFollower, load_state
from agent.server import ServerClient, fetch_revocation_feed
from attestor import errors
from attestor.revocation import AttestationMeta, KeyTarget
from tests.unit.agent._feed_server import REFRESH, Clock, FeedServer, rev, serve, trusted

SERVER = CryptoSigner.generate_ecdsa()
OTHER = CryptoSigner.generate_ed25519()
MAX_AGE = timedelta(minutes=15)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed(clock: Clock) -> Iterator[FeedServer]:
    with serve(FeedServer(SERVER, clock, revocations=[rev(i) for i in range(1, 8)])) as f:
        yield f


def follower(feed: FeedServer, state_dir: Path, clock: Clock, **kw) -> FeedFollower:
    client = ServerClient(feed.url, "t0ken", timeout=5)
    kw.setdefault("limit", 3)
    return FeedFollower(client, kw.pop("keys", [trusted(SERVER)]), state_dir,
                        max_age=MAX_AGE, clock=clock, **kw)  # fmt: skip


def test_pages_until_complete_and_persists(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    assert len(f.revset) == 0 and f.state.cursor == 0
    result = f.poll()
    assert result.anomaly is None and result.changed
    assert [r[0] for r in feed.requests] == [0, 3, 6]  # three pages of up to 3
    assert result.revset is f.revset and result.revset.version == 7 and len(result.revset) == 7
    assert (f.state.feed_id, f.state.cursor, f.state.latest) == ("srv-1", 7, 7)
    assert load_state(tmp_path).state == f.state
    assert result.revset.match(AttestationMeta(layer_digest="sha256:" + f"{5:064x}")).id == "rev-5"


def test_not_modified_keeps_state_until_the_epoch_turns(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    f.poll()
    # The last page moved the cursor, so its ETag cannot match: one empty page first.
    empty = f.poll()
    assert not empty.changed and empty.anomaly is None and f.state.etag is not None
    on_disk = (tmp_path / STATE_FILE).read_bytes()
    feed.requests.clear()
    same = f.poll()
    assert feed.requests == [(7, 3, f.state.etag)]  # answered 304
    assert not same.changed and same.anomaly is None and same.revset is empty.revset
    assert (tmp_path / STATE_FILE).read_bytes() == on_disk
    clock.now += REFRESH  # a new epoch: a freshly signed page, a new ETag
    old_etag = f.state.etag
    assert f.poll().anomaly is None and f.state.etag not in (None, old_etag)
    feed.revocations.append(rev(8))
    new = f.poll()
    assert new.changed and new.revset.version == 8 and f.state.etag is None


def test_rollback_is_rejected(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock, max_pages=1)
    f.poll()
    assert (f.state.cursor, f.state.latest) == (3, 7)
    del feed.revocations[5:]  # the server "forgets" 6 and 7 but keeps its feed id
    result = f.poll()
    assert "rollback" in result.anomaly and not result.changed
    assert (f.state.cursor, f.state.latest, len(f.revset)) == (3, 7, 3)


def test_page_signed_by_an_untrusted_key_is_rejected(feed, tmp_path, clock):
    feed.signer = OTHER
    f = follower(feed, tmp_path, clock)
    result = f.poll()
    assert "rejected" in result.anomaly and "no verified revocation feed page yet" in result.anomaly
    assert len(result.revset) == 0 and not (tmp_path / STATE_FILE).exists()


def test_a_key_revoked_by_the_feed_no_longer_signs_it(feed, tmp_path, clock):
    feed.revocations.append(rev(8, KeyTarget(SERVER.public_key.keyid), id="leak"))
    f = follower(feed, tmp_path, clock)
    assert f.poll().anomaly is None and f.revset.is_key_revoked(SERVER.public_key.keyid)
    clock.now += REFRESH
    result = f.poll()
    assert "no trusted, unrevoked key" in result.anomaly and f.state.cursor == 8


def test_stale_page_and_304_forever_are_anomalies(feed, tmp_path, clock):
    feed.lag = MAX_AGE + REFRESH  # a server (or replayer) handing out old pages
    f = follower(feed, tmp_path, clock)
    assert "stale page" in f.poll().anomaly and len(f.revset) == 0
    feed.lag = timedelta(0)
    assert f.poll().anomaly is None
    f.poll()  # the empty page whose ETag the "attacker" replays as 304 from now on
    feed.clock = Clock(clock.now)  # the server's epoch freezes: 304 forever
    clock.now += MAX_AGE - timedelta(seconds=1)
    assert f.poll().anomaly is None
    clock.now += timedelta(seconds=2)
    result = f.poll()
    assert feed.requests[-1][2] is not None and "revocation feed stale" in result.anomaly
    assert len(result.revset) == 7  # what is known stays applied


@pytest.mark.parametrize("new_latest", [2, 9])
def test_new_feed_id_restarts_from_zero_and_keeps_known(feed, tmp_path, clock, new_latest):
    f = follower(feed, tmp_path, clock)
    f.poll()
    # The server's database was re-created: new feed id, sequences from 1 again.
    # Below our cursor the server answers 409; above it the page has another id.
    feed.feed_id = "srv-2"
    feed.revocations = [rev(i, id=f"new-{i}") for i in range(1, new_latest + 1)]
    result = f.poll()
    assert "feed id changed from 'srv-1' to 'srv-2'" in result.anomaly and result.changed
    assert (f.state.feed_id, f.state.cursor, f.state.offset) == ("srv-2", new_latest, 7)
    assert len(result.revset) == 7 + new_latest and result.revset.version == 7 + new_latest
    ids = {r.id for r in result.revset}
    assert {"rev-1", "rev-7", "new-1", f"new-{new_latest}"} <= ids
    assert f.poll().anomaly is None
    reloaded = follower(feed, tmp_path, clock)
    assert {r.id for r in reloaded.revset} == ids


def test_restored_backup_keeps_one_copy_of_each_revocation(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    f.poll()
    feed.feed_id = "srv-restored"
    feed.revocations = feed.revocations[:4]  # the backup predates 5..7
    result = f.poll()
    assert "feed id changed" in result.anomaly
    assert sorted(r.id for r in result.revset) == sorted(f"rev-{i}" for i in range(1, 8))


def test_409_on_the_same_feed_is_an_anomaly_not_a_reset(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    f.poll()
    feed.revocations = feed.revocations[:2]
    result = f.poll()
    assert "refused cursor 7" in result.anomaly and f.state.feed_id == "srv-1"
    assert f.state.cursor == 7 and len(f.revset) == 7


def test_restart_reloads_state_and_continues(feed, tmp_path, clock):
    follower(feed, tmp_path, clock).poll()
    feed.requests.clear()
    feed.revocations.append(rev(8))
    again = follower(feed, tmp_path, clock)
    assert len(again.revset) == 7 and again.state.cursor == 7
    result = again.poll()
    assert feed.requests[0][0] == 7 and result.changed and result.anomaly is None
    assert again.revset.version == 8


def _rewrite(path: Path, edit) -> None:
    import hashlib

    doc = json.loads(path.read_bytes())
    edit(doc["state"])
    body = json.dumps(doc["state"], sort_keys=True, separators=(",", ":"))
    doc["sha256"] = hashlib.sha256(body.encode()).hexdigest()
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda p: p.write_bytes(b"\x00garbage"),
        lambda p: p.write_bytes(p.read_bytes()[:-20]),  # torn
        lambda p: p.write_bytes(p.read_bytes().replace(b'"cursor":7', b'"cursor":6')),
        lambda p: _rewrite(p, lambda s: s.update(cursor=9)),  # ahead of latest
        lambda p: _rewrite(p, lambda s: s.update(cursor=True)),
        lambda p: _rewrite(p, lambda s: s["revocations"][0].update(sequence=5)),
        lambda p: _rewrite(p, lambda s: s["revocations"][0].update(target={"kind": "x"})),
        lambda p: _rewrite(p, lambda s: s.update(extra=1)),
    ],
    ids=["garbage", "torn", "edited", "ahead", "bool", "order", "schema", "member"],
)
def test_corrupt_state_restarts_from_zero_and_says_so(feed, tmp_path, clock, corrupt):
    follower(feed, tmp_path, clock).poll()
    corrupt(tmp_path / STATE_FILE)
    f = follower(feed, tmp_path, clock)
    assert f.state.cursor == 0 and len(f.revset) == 0
    assert (tmp_path / (STATE_FILE + ".corrupt")).exists()
    feed.requests.clear()
    result = f.poll()
    assert "is corrupt" in result.anomaly and "starting again from cursor 0" in result.anomaly
    assert feed.requests[0][0] == 0 and len(result.revset) == 7
    assert f.poll().anomaly is None


def test_unreachable_server_is_an_anomaly_only_once_stale(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    f.poll()
    client = ServerClient("http://127.0.0.1:9", "t0ken", timeout=2)  # discard port: refused
    down = FeedFollower(client, [trusted(SERVER)], tmp_path, max_age=MAX_AGE, clock=clock)
    assert down.poll().anomaly is None
    clock.now += MAX_AGE + timedelta(seconds=1)
    result = down.poll()
    assert "stale" in result.anomaly and "unreachable" in result.anomaly
    assert len(result.revset) == 7


def test_fetch_maps_answers(feed, clock):
    client = ServerClient(feed.url, "t0ken", timeout=5)
    page = fetch_revocation_feed(client, since=0, limit=2)
    assert page.body is not None and page.etag.startswith('"rf2-') and not page.not_modified
    assert fetch_revocation_feed(client, since=0, limit=2, etag=page.etag).not_modified
    with pytest.raises(errors.Conflict, match="ahead"):
        fetch_revocation_feed(client, since=99, limit=2)
    with pytest.raises(errors.InvalidInput):
        fetch_revocation_feed(client, since=-1, limit=2)
    with pytest.raises(errors.NotFound):
        fetch_revocation_feed(ServerClient(feed.url, "wrong", timeout=5), since=0, limit=2)


def test_bad_arguments(tmp_path, clock):
    client = ServerClient("http://127.0.0.1:9", "t0ken", timeout=1)
    with pytest.raises(errors.ConfigError):
        FeedFollower(client, [], tmp_path, max_age=timedelta(0), clock=clock)
    with pytest.raises(errors.ConfigError):
        FeedFollower(client, [], tmp_path, max_age=MAX_AGE, clock=clock, limit=0)


def test_signed_page_reusing_an_id_is_rejected(feed, tmp_path, clock):
    f = follower(feed, tmp_path, clock)
    f.poll()
    feed.revocations.append(rev(8, id="rev-1"))
    result = f.poll()
    assert "reuses revocation ids ['rev-1']" in result.anomaly
    assert f.state.cursor == 7 and f.revset.version == 7


def test_empty_feed_then_new_feed_id(clock, tmp_path):
    with serve(FeedServer(SERVER, clock)) as feed:
        f = follower(feed, tmp_path, clock)
        assert f.poll().anomaly is None and f.state.feed_id == "srv-1"
        feed.feed_id = "srv-2"
        feed.revocations = [rev(1)]
        result = f.poll()
        assert "changed from 'srv-1' to 'srv-2'" in result.anomaly
        assert f.state.feed_id == "srv-2" and len(result.revset) == 1


def test_many_pages_in_one_poll_are_linear(clock, tmp_path):
    revs = [rev(i) for i in range(1, 3001)]
    with serve(FeedServer(SERVER, clock, revocations=revs)) as feed:
        f = follower(feed, tmp_path, clock, limit=100, max_pages=20)
        first = f.poll()
        assert first.anomaly is None and f.state.cursor == 2000 and len(first.revset) == 2000
        assert len(feed.requests) == 20 and load_state(tmp_path).state.cursor == 2000
        assert f.poll().revset.version == 3000
