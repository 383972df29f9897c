# SPDX-License-Identifier: Apache-2.0
"""attestor.store._cursor: keyset cursors and page cutting (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from attestor.errors import InvalidInput
from attestor.store._cursor import (
    check_limit,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    split_page,
)


def test_split_page_cuts_the_extra_row_into_a_cursor() -> None:
    rows = [10, 20, 30]
    page, cursor = split_page(rows, 2, lambda r: (r, "x"))
    assert page == [10, 20]
    assert cursor is not None and decode_cursor(cursor, (int, str)) == [20, "x"]
    assert split_page(rows, 3, lambda r: (r,)) == ([10, 20, 30], None)
    assert split_page([], 5, lambda r: (r,)) == ([], None)


def test_time_cursor_round_trip_and_refusals() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert decode_time_cursor(encode_cursor(moment.isoformat(), "id-1")) == (moment, "id-1")
    for bad in (
        encode_cursor("2026-03-01T12:00:00", "id"),  # naive: never issued by the store
        encode_cursor("yesterday", "id"),
        encode_cursor(5, "id"),
        encode_cursor(moment.isoformat()),
        "!!!",
    ):
        with pytest.raises(InvalidInput, match="^malformed cursor$"):
            decode_time_cursor(bad)


def test_check_limit() -> None:
    check_limit(1, 10)
    check_limit(10, 10)
    for limit in (0, 11, -1):
        with pytest.raises(InvalidInput, match=f"^limit must be between 1 and 10, got {limit}$"):
            check_limit(limit, 10)
