# SPDX-License-Identifier: Apache-2.0
"""Spool: put/pending/ack, reopen, torn and damaged files, bounds, locking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.spool import Spool, SpoolLimits
from agent.spool import _framing as framing
from attestor.errors import ConfigError, InvalidInput, TooLarge, Unavailable


def _records(spool: Spool) -> list[dict[str, object]]:
    return [dict(e.record) for e in spool.pending()]


def test_put_pending_ack_in_order(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "s") as spool:
        ids = [spool.put({"n": i, "text": "é"}) for i in range(5)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 5
        assert [e.id for e in spool.pending()] == ids
        assert _records(spool) == [{"n": i, "text": "é"} for i in range(5)]
        assert [e.id for e in spool.pending(limit=2)] == ids[:2]
        spool.ack(ids[0], ids[2])
        spool.ack(ids[0])  # repeated ack is harmless
        assert [e.record["n"] for e in spool.pending()] == [1, 3, 4]
        stats = spool.stats()
        assert (stats.pending, stats.dropped, stats.quarantined) == (3, 0, 0)
        assert stats.pending_bytes == sum(e.size for e in spool.pending())


def test_reopen_keeps_pending_and_continues_ids(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = spool.put({"n": 1})
        b = spool.put({"n": 2})
        spool.ack(a)
    with Spool.open(tmp_path) as spool:
        assert [(e.id, e.record) for e in spool.pending()] == [(b, {"n": 2})]
        c = spool.put({"n": 3})
        assert c > b
        assert _records(spool) == [{"n": 2}, {"n": 3}]


def test_leftover_tmp_is_removed_on_open(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put({"n": 1})
    # A crash between write and rename leaves only a .tmp file.
    (tmp_path / "00000000000000000001.rec.tmp").write_bytes(b"ATSPOOL1 99 ab")
    with Spool.open(tmp_path) as spool:
        assert _records(spool) == [{"n": 1}]
        assert spool.put({"n": 2}) == "00000000000000000001"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-3],  # truncated payload
        lambda data: data[:10],  # truncated header
        lambda data: b"\0" * len(data),  # zero-filled blocks after a crash
        lambda data: data[:-2] + b"9}",  # flipped payload byte
        lambda data: b"",  # empty file
    ],
)
def test_damaged_record_is_quarantined_and_others_survive(tmp_path: Path, damage) -> None:
    with Spool.open(tmp_path) as spool:
        ids = [spool.put({"n": i}) for i in range(3)]
    victim = tmp_path / f"{ids[1]}.rec"
    victim.write_bytes(damage(victim.read_bytes()))
    with Spool.open(tmp_path) as spool:
        assert _records(spool) == [{"n": 0}, {"n": 2}]
        assert spool.stats().quarantined == 1
        assert spool.stats().pending == 2
    assert (tmp_path / "corrupt" / f"{ids[1]}.rec").exists()


def test_framing_round_trip_and_rejects_trailing_bytes() -> None:
    framed = framing.encode(b'{"a":1}')
    assert framing.decode(framed) == b'{"a":1}'
    assert framing.decode(framed + b"x") is None
    assert framing.decode(b"garbage\n{}") is None


def test_valid_frame_with_non_object_json_is_quarantined(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        ident = spool.put({"n": 1})
    (tmp_path / f"{ident}.rec").write_bytes(framing.encode(b"[1, 2]"))
    with Spool.open(tmp_path) as spool:
        assert _records(spool) == []
        assert spool.stats().quarantined == 1


def test_full_spool_refuses_and_counts_persistently(tmp_path: Path) -> None:
    limits = SpoolLimits(max_records=2, max_record_bytes=64)
    with Spool.open(tmp_path, limits=limits) as spool:
        spool.put({"n": 1})
        spool.put({"n": 2})
        with pytest.raises(Unavailable, match="spool full") as info:
            spool.put({"n": 3})
        assert info.value.detail["dropped"] == 1
        with pytest.raises(TooLarge):
            spool.put({"big": "x" * 100})
        assert spool.stats().dropped == 2
        assert _records(spool) == [{"n": 1}, {"n": 2}]
    with Spool.open(tmp_path, limits=limits) as spool:
        assert spool.stats().dropped == 2
        spool.ack(next(iter(spool.pending())).id)
        spool.put({"n": 4})  # room again
        assert _records(spool) == [{"n": 2}, {"n": 4}]


def test_byte_bound(tmp_path: Path) -> None:
    with Spool.open(tmp_path, limits=SpoolLimits(max_bytes=300)) as spool:
        spool.put({"pad": "x" * 100})
        with pytest.raises(Unavailable):
            spool.put({"pad": "x" * 200})
        assert len(spool) == 1


@pytest.mark.parametrize("bad", [{"t": float("nan")}, {"o": object()}, ["not", "an", "object"]])
def test_non_json_records_are_refused(tmp_path: Path, bad) -> None:
    with Spool.open(tmp_path) as spool, pytest.raises(InvalidInput):
        spool.put(bad)


def test_second_opener_is_refused(tmp_path: Path) -> None:
    with Spool.open(tmp_path), pytest.raises(ConfigError, match="in use"):
        Spool.open(tmp_path)
    Spool.open(tmp_path).close()  # released on close


def test_reject_moves_record_aside(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = spool.put({"n": 1})
        spool.put({"n": 2})
        spool.reject(a)
        assert _records(spool) == [{"n": 2}]
        assert spool.stats().rejected == 1
    assert (tmp_path / "rejected" / f"{a}.rec").exists()


def test_record_files_are_private(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "s") as spool:
        ident = spool.put({"n": 1})
    assert os.stat(tmp_path / "s" / f"{ident}.rec").st_mode & 0o077 == 0


def test_put_many_in_order_with_one_batch(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        first = spool.put({"n": -1})
        ids = spool.put_many([{"n": i} for i in range(50)])
        assert ids == sorted(ids) and ids[0] > first
        assert [e.record["n"] for e in spool.pending()] == list(range(-1, 50))
        assert spool.put_many([]) == []
    assert not list(tmp_path.glob("*.tmp"))


def test_put_many_partial_when_full(tmp_path: Path) -> None:
    with Spool.open(tmp_path, limits=SpoolLimits(max_records=3)) as spool:
        spool.put({"n": 0})
        with pytest.raises(Unavailable, match="refused 2 of 4") as info:
            spool.put_many([{"n": i} for i in range(1, 5)])
        assert info.value.detail["stored"] == [e.id for e in spool.pending()][1:]
        assert [e.record["n"] for e in spool.pending()] == [0, 1, 2]
        assert spool.stats().dropped == 2


def test_put_many_with_a_bad_record_stores_nothing(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        with pytest.raises(InvalidInput):
            spool.put_many([{"n": 1}, {"bad": object()}])
        assert len(spool) == 0
        assert spool.stats().dropped == 0
