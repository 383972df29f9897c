# SPDX-License-Identifier: Apache-2.0
"""Opaque keyset-pagination cursors: urlsafe base64 of a small JSON array.

Keyset (not offset) pagination keeps pages stable while rows are inserted.
The cursor is opaque to callers; a malformed one is their error, never ours.
"""

from __future__ import annotations

import base64
import binascii
import json

from attestor.errors import InvalidInput

__all__ = ["MAX_CURSOR_CHARS", "decode_cursor", "encode_cursor"]

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
