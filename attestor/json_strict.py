# SPDX-License-Identifier: Apache-2.0
"""The one strict JSON loader for untrusted or signed bytes (pure, no I/O).

The standard library accepts things that let two parsers read the same bytes
differently: a repeated member (one parser keeps the first, another the last),
``NaN``/``Infinity`` (not JSON at all, RFC 8259 section 6) and, from bytes, any
of UTF-8/16/32 with or without a BOM. For signed payloads that ambiguity is an
attack surface, so every strict parse in the project goes through here.

The standard ``json`` module is used because it exposes exactly the hooks
needed (``object_pairs_hook``, ``parse_constant``, ``parse_float``); no
well-kept library offers a duplicate-key and constant check on top of it.
Those hooks cost a Python call per object, so compact documents first take a
fast path through ``orjson`` (RFC 8259 strict: no NaN, UTF-8 only): its result
is accepted only when serializing it again gives back the input byte for byte.
That proves there was no repeated member (the output would have fewer), no
BOM, no escape or number spelled two ways; anything else falls through to the
hooks, which decide and word the error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from attestor.errors import InvalidInput, TooLarge

__all__ = ["loads_strict"]


def loads_strict(
    data: bytes | str,
    *,
    what: str,
    max_bytes: int | None = None,
    integers_only: bool = False,
) -> Any:
    """Parse one JSON document, refusing anything two parsers could read differently.

    Refused: a repeated object member, ``NaN``/``Infinity``/``-Infinity``,
    bytes that are not UTF-8 (a BOM included), nesting deeper than the
    interpreter's recursion limit, and, with ``integers_only``, any number with
    a fraction or an exponent. Every message starts with ``f"{what}: "``.

    Args:
        data: The document; bytes must be UTF-8.
        what: Names the document in error messages (``"feed page"``).
        max_bytes: When given, larger ``data`` is refused before parsing (for a
            ``str``, its length in characters is compared).
        integers_only: Refuse non-integer numbers too.

    Raises:
        TooLarge: ``data`` is longer than ``max_bytes``.
        InvalidInput: ``data`` is not such a document.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(f"{what}: {len(data)} bytes, over the limit of {max_bytes}")
    if not integers_only and type(data) is bytes:
        try:
            doc = orjson.loads(data)
            if orjson.dumps(doc) == data:
                return doc
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass  # e.g. a lone surrogate escape, or an integer over 64 bits
    try:
        # Decoding ourselves, not json.loads(bytes): that would guess UTF-16/32.
        text = data if isinstance(data, str) else str(data, "utf-8")
        if text.startswith("\ufeff"):  # what json.loads says for a str with a BOM
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return (_INTEGERS_ONLY if integers_only else _DECODER).decode(text)
    except _Refused as e:
        raise InvalidInput(f"{what}: {e.args[0]}") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{what}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{what}: not JSON ({e.msg} at {e.pos})") from None
    except RecursionError:
        raise InvalidInput(f"{what}: JSON nested too deeply") from None


class _Refused(Exception):
    """Raised by the decoder hooks; ``loads_strict`` adds the document's name."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() in C, then a length compare: a repeated member makes the dict
    # shorter. Only then walk the pairs to name the first repeated key.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate JSON key {key[:80]!r}")
            seen.add(key)
    return doc


def _constant(name: str) -> Any:
    raise _Refused(f"non-standard JSON constant {name}")


def _no_float(text: str) -> Any:
    raise _Refused(f"only integers are allowed, got {text[:20]!r}")


# Built once: json.loads(..., hook=...) would build a decoder and scanner per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_constant)
_INTEGERS_ONLY = json.JSONDecoder(
    object_pairs_hook=_unique, parse_constant=_constant, parse_float=_no_float
)
