# SPDX-License-Identifier: Apache-2.0
"""What a snapshot walk could not check, as the agent reports it.

A walk that meets something it cannot read or represent records it here and
goes on: the record becomes a violation of its own, and the rest of the tree
is still compared, so one bad name cannot hide a tampered file beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_UNSCANNABLE", "Unscannable", "shown_path"]

#: Unscannable entries listed one by one; beyond, they are only counted
#: (a tree of a million bad names must not make a million violations).
MAX_UNSCANNABLE = 100
#: Longest path shown in an :class:`Unscannable` (the real one may be longer).
_MAX_SHOWN = 1024


@dataclass(frozen=True, slots=True)
class Unscannable:
    """A part of a snapshot the walk could not check.

    Attributes:
        path: the entry, shown as UTF-8 (a byte that is not valid UTF-8 as
            ``\\xff``; cut after 1024 characters); None for the snapshot as a
            whole (its root, or the rest of it after a cap stopped the walk).
        reason: why it was not checked.
        too_large: a limit was exceeded (else it could not be read or represented).
    """

    path: str | None
    reason: str
    too_large: bool = False


def shown_path(rel: str) -> str:
    """``rel`` (as ``os.scandir`` decodes names) as printable UTF-8, cut when long."""
    text = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
