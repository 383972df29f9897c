# SPDX-License-Identifier: Apache-2.0
"""Keyset pagination: opaque cursors (urlsafe base64 of a small JSON array) and pages.

Keyset (not offset) pagination keeps pages stable while rows are inserted.
The cursor is opaque to callers; a malformed one is their error, never ours.
A listing checks ``limit`` (:func:`check_limit`), filters on the cursor's sort
key, fetches ``limit + 1`` rows in sort order and cuts them with
:func:`split_page`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from attestor.errors import InvalidInput

__all__ = [
    "MAX_CURSOR_CHARS",
    "check_limit",
    "decode_cursor",
    "decode_time_cursor",
    "encode_cursor",
    "split_page",
]

_Row = TypeVar("_Row")

MAX_CURSOR_CHARS = 512


def encode_cursor(*parts: str | int) -> str:
    """Encode the sort key of the last row of a page."""
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[str | int]:
    """Decode a cursor made by :func:`encode_cursor` whose parts have ``types``.

    Raises:
        InvalidInput: The cursor is malformed or of another listing.
    """
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput(f"cursor longer than {MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("malformed cursor") from None
    if (
        not isinstance(parts, list)
        or len(parts) != len(types)
        or not all(type(p) is t for p, t in zip(parts, types, strict=True))
    ):
        raise InvalidInput("malformed cursor")
    return parts


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """Decode ``encode_cursor(moment.isoformat(), ident)``: an aware time and an id.

    Raises:
        InvalidInput: The cursor is malformed, of another listing, or its time is
            naive (the store only holds aware UTC times).
    """
    moment, ident = decode_cursor(cursor, (str, str))
    try:
        after = datetime.fromisoformat(str(moment))
    except ValueError:
        raise InvalidInput("malformed cursor") from None
    if after.tzinfo is None:
        raise InvalidInput("malformed cursor")
    return after, str(ident)


def check_limit(limit: int, max_page: int) -> None:
    """Refuse a page size outside ``1..max_page``.

    Raises:
        InvalidInput: ``limit`` is out of range.
    """
    if not 1 <= limit <= max_page:
        raise InvalidInput(f"limit must be between 1 and {max_page}, got {limit}")


def split_page(
    rows: Sequence[_Row], limit: int, key: Callable[[_Row], tuple[str | int, ...]]
) -> tuple[list[_Row], str | None]:
    """Cut ``limit + 1`` fetched rows into the page and the cursor of the next page.

    The extra row only tells that another page exists (no COUNT query); the
    cursor is ``key`` of the page's last row, the sort key the next page
    starts after.
    """
    if len(rows) > limit:
        return list(rows[:limit]), encode_cursor(*key(rows[limit - 1]))
    return list(rows), None
