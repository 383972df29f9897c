# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from attestor.errors import InvalidInput
from attestor.revocation import (
    KINDS,
    KeyTarget,
    Revocation,
    SubjectTarget,
    TimeWindowTarget,
    parse_target,
)
from attestor.revocation.model import format_time, parse_time
from tests.unit.revocation._helpers import LAYER, T0, one_of_each, rev


def test_every_kind_round_trips_through_the_schema():
    revocations = one_of_each()
    assert sorted({r.kind for r in revocations}) == sorted(KINDS)
    for r in revocations:
        doc = json.loads(r.to_json())
        assert doc == r.to_dict()
        assert Revocation.from_dict(doc) == r
        assert parse_target(doc["target"]) == r.target


def test_json_is_deterministic_and_times_are_utc_z():
    r = rev(
        9,
        SubjectTarget(LAYER),
        created_at=datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert (
        r.to_json()
        == rev(
            9, SubjectTarget(LAYER), created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        ).to_json()
    )
    assert json.loads(r.to_json())["created_at"] == "2026-03-01T12:00:00Z"
    assert format_time(T0.replace(microsecond=5)) == "2026-03-01T12:00:00.000005Z"
    assert parse_time("2026-03-01T14:00:00+02:00", "t") == T0


def test_window_omits_absent_bounds():
    w = TimeWindowTarget(not_after=T0)
    assert w.to_dict() == {"kind": "time_window", "not_after": "2026-03-01T12:00:00Z"}
    assert w.contains(T0 - timedelta(seconds=1))
    assert not w.contains(T0)  # half-open: not_after is excluded
    w2 = TimeWindowTarget(not_before=T0)
    assert w2.contains(T0) and not w2.contains(T0 - timedelta(microseconds=1))


def _doc(**changes):
    doc = rev(1, KeyTarget("k1")).to_dict()
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(sequence=0), "sequence"),
        (_doc(sequence=True), "sequence"),
        (_doc(sequence=1.0), "sequence"),
        (_doc(sequence=2**63), "sequence"),
        (_doc(id=""), "id"),
        (_doc(id="a b"), "id"),
        (_doc(reason=""), "reason"),
        (_doc(actor="x" * 257), "actor"),
        (_doc(created_at="2026-03-01"), "created_at"),
        (_doc(created_at="2026-03-01T12:00:00"), "created_at"),
        (_doc(created_at="2026-13-01T12:00:00Z"), "created_at"),
        (_doc(created_at="2026-03-01t12:00:00z"), "created_at"),
        (_doc(created_at="9999-12-31T23:59:59-01:00"), "created_at"),
        (_doc(created_at="0001-01-01T00:00:00+01:00"), "created_at"),
        (_doc(created_at="2026-03-01T12:00:00+24:00"), "created_at"),
        (_doc(extra=1), "extra"),
        (_doc(target={"kind": "key"}), "target"),
        (_doc(target={"kind": "key", "keyid": "k", "digest": LAYER}), "target"),
        (_doc(target={"kind": "nope", "keyid": "k"}), "target"),
        (_doc(target={"kind": "subject", "digest": "sha256:" + "A" * 64}), "target"),
        (_doc(target={"kind": "attestation", "attestation_id": "x"}), "target"),
        (_doc(target={"kind": "time_window"}), "target"),
        (_doc(target={"kind": "time_window", "keyid": "k"}), "target"),
        ({"id": "x"}, "revocation"),
        ([], "revocation"),
    ],
)
def test_bad_documents_are_rejected(doc, message):
    with pytest.raises(InvalidInput, match=message):
        Revocation.from_dict(doc)


def test_constructor_checks_what_the_schema_checks():
    with pytest.raises(InvalidInput, match="time window needs"):
        TimeWindowTarget()
    with pytest.raises(InvalidInput, match="later than"):
        TimeWindowTarget(not_before=T0, not_after=T0)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        TimeWindowTarget(not_before=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="target.digest"):
        SubjectTarget("sha512:00")
    with pytest.raises(InvalidInput, match="created_at"):
        rev(1, KeyTarget("k"), created_at=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="sequence"):
        rev(0, KeyTarget("k"))
    with pytest.raises(InvalidInput, match="keyid"):
        KeyTarget("has space")
    # The window's inverted bounds pass the schema; the model still refuses them.
    doc = _doc(
        target={
            "kind": "time_window",
            "not_before": "2026-03-02T00:00:00Z",
            "not_after": "2026-03-01T00:00:00Z",
        }
    )
    with pytest.raises(InvalidInput, match="later than"):
        Revocation.from_dict(doc)


@pytest.mark.parametrize(
    "first",
    ["attestor.revocation_feed", "attestor.verify", "attestor.revocation", "attestor.signing"],
)
def test_imports_in_any_order(first):
    # revocation_feed -> signing, verify -> revocation: no import order may break.
    code = f"import {first}; import attestor.revocation, attestor.verify, attestor.revocation_feed"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
