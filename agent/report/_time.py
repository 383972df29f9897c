# SPDX-License-Identifier: Apache-2.0
"""RFC 3339 timestamps as the reports carry them (UTC, ``Z``, microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime

from attestor.errors import InvalidInput

__all__ = ["format_time", "parse_time", "require_aware"]


def require_aware(value: datetime, what: str) -> datetime:
    """``value`` in UTC.

    Raises:
        InvalidInput: if ``value`` is not a timezone-aware datetime.
    """
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """``2026-11-27T04:44:35.123456Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, what: str) -> datetime:
    """Parse an RFC 3339 date-time (already checked by the schema) into UTC.

    Raises:
        InvalidInput: if it does not parse or has no offset.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what}: not an RFC 3339 date-time: {str(value)[:40]!r}") from e
    return require_aware(parsed, what)
