# SPDX-License-Identifier: Apache-2.0
"""The chain check on rows in memory: every field is covered by the hash, anchors, parsing."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestor.errors import InvalidInput
from attestor.services.audit import parse_anchor, verify_entries
from attestor.store.audit import GENESIS_HASH, AuditEntry, canonical_change, entry_hash

T0 = datetime(2026, 12, 1, 8, 0, 0, 1, tzinfo=UTC)


def _chain(n: int) -> list[AuditEntry]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "created_at": T0 + timedelta(seconds=seq),
            "actor": f"token:{seq}",
            "action": "policy.update",
            "target": "policy:p",
            "change": canonical_change({"version": seq}),
            "prev_hash": prev,
        }
        prev = entry_hash(**fields)  # type: ignore[arg-type]
        rows.append(AuditEntry(**fields, hash=prev))  # type: ignore[arg-type]
    return rows


def _head(rows: list[AuditEntry]) -> tuple[int, str]:
    return (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS_HASH)


def test_an_intact_chain_and_an_empty_one_pass() -> None:
    rows = _chain(4)
    report = verify_entries(rows, head=_head(rows), anchors=[(2, rows[1].hash)])
    assert (report.ok, report.rows, report.head_seq, report.head_hash) == (
        True,
        4,
        4,
        rows[-1].hash,
    )
    assert verify_entries([], head=(0, GENESIS_HASH)).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", T0),
        ("actor", "token:someone-else"),
        ("action", "policy.delete"),
        ("target", "policy:other"),
        ("change", canonical_change({"version": 99})),
    ],
)
def test_editing_any_hashed_field_breaks_that_row(field: str, value: object) -> None:
    rows = _chain(4)
    rows[2] = dataclasses.replace(rows[2], **{field: value})
    report = verify_entries(rows, head=_head(rows))
    assert (report.ok, report.broken_seq, report.rows) == (False, 3, 2)
    assert "row edited" in report.problem


def test_recomputing_the_edited_rows_hash_breaks_the_next_link() -> None:
    rows = _chain(4)
    edited = dataclasses.replace(rows[1], actor="token:x")
    rows[1] = dataclasses.replace(
        edited,
        hash=entry_hash(**{k: v for k, v in dataclasses.asdict(edited).items() if k != "hash"}),
    )
    report = verify_entries(rows, head=_head(rows))
    assert (report.broken_seq, report.problem) == (
        3,
        "prev_hash does not match the previous row's hash",
    )


def test_a_removed_tail_needs_the_head_and_an_anchor_catches_a_rewrite() -> None:
    rows = _chain(4)
    report = verify_entries(rows[:3], head=_head(rows))
    assert (report.ok, report.broken_seq) == (False, 4)
    # The tail removed and the head rewritten to match: only an anchor notices.
    assert verify_entries(rows[:3], head=_head(rows[:3])).ok
    report = verify_entries(rows[:3], head=_head(rows[:3]), anchors=[(4, rows[3].hash)])
    assert (report.ok, report.broken_seq) == (False, 4)
    report = verify_entries(rows, head=_head(rows), anchors=[(2, "a" * 64)])
    assert (report.ok, report.broken_seq) == (False, 2)


def test_the_canonical_change_is_one_text_per_value() -> None:
    assert canonical_change({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    with pytest.raises(InvalidInput):
        canonical_change({"x": float("nan")})
    with pytest.raises(InvalidInput):
        canonical_change({"x": "y" * 70_000})


@given(st.text(max_size=120))
def test_parse_anchor_accepts_only_seq_colon_hash(text: str) -> None:
    try:
        seq, digest = parse_anchor(text)
    except InvalidInput:
        return
    assert text == f"{seq}:{digest}" or text.lstrip("0") == f"{seq}:{digest}".lstrip("0")
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_a_change_read_back_hashes_the_same(change: dict[str, object]) -> None:
    text = canonical_change(change)
    assert canonical_change(json.loads(text)) == text
