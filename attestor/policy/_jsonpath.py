# SPDX-License-Identifier: Apache-2.0
"""The small JSON path subset a policy condition may name (pure).

``$`` followed by ``.name``, ``['name']`` / ``["name"]`` or ``[index]``
steps: one path names at most one value. Filters, wildcards and recursive
descent are not supported on purpose: a condition "some value somewhere
equals X" is too easy to satisfy by adding a field. Hand-written because
the libraries (jsonpath-ng and others) implement the full language, which is
exactly what is not wanted here, and are not dependencies of the core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attestor.errors import InvalidInput

__all__ = ["MISSING", "JsonPath"]

_STEP = re.compile(
    r"\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|\[(?P<index>0|[1-9][0-9]{0,5})\]"
    r"|\['(?P<sq>[^'\\]*)'\]"
    r'|\["(?P<dq>[^"\\]*)"\]'
)
MAX_STEPS = 32


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What ``JsonPath.lookup`` returns when the path names nothing.
MISSING: Any = _Missing()


@dataclass(frozen=True)
class JsonPath:
    """A parsed path; ``text`` is what the policy wrote."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse ``text``.

        Raises:
            InvalidInput: not ``$`` followed by supported steps, or too many steps.
        """
        if not text.startswith("$"):
            raise InvalidInput(f"JSON path {text[:80]!r} must start with '$'")
        steps: list[str | int] = []
        pos = 1
        while pos < len(text):
            m = _STEP.match(text, pos)
            if m is None:
                raise InvalidInput(
                    f"JSON path {text[:80]!r}: unsupported syntax at character {pos} "
                    "(use .name, ['name'] or [index])"
                )
            if m.group("index") is not None:
                steps.append(int(m.group("index")))
            else:
                steps.append(next(g for g in (m["name"], m["sq"], m["dq"]) if g is not None))
            pos = m.end()
        if not steps or len(steps) > MAX_STEPS:
            raise InvalidInput(f"JSON path {text[:80]!r} must have 1 to {MAX_STEPS} steps")
        return cls(text=text, steps=tuple(steps))

    def lookup(self, document: object) -> Any:
        """The value at this path in ``document``, or ``MISSING``."""
        value: Any = document
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list | tuple) or step >= len(value):
                    return MISSING
            elif not isinstance(value, Mapping) or step not in value:
                return MISSING
            value = value[step]
        return value
