# SPDX-License-Identifier: Apache-2.0
"""Policy bytes to a plain JSON-shaped document (pure, no I/O).

JSON documents (the first non-blank byte is ``{``) go through the project's
strict JSON loader; anything else is YAML read with a SafeLoader that refuses
aliases and repeated keys. Either way the result holds only JSON values
(str-keyed dicts, lists, str, int, float, bool, None), so schema validation
and the model never meet a YAML date, a set or an integer key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypedDict

import yaml

from attestor.errors import InvalidInput
from attestor.json_strict import loads_strict

__all__ = [
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_POLICY_BYTES",
    "PolicyError",
    "error",
    "invalid",
    "pointer_of",
    "read_document",
]

#: A policy is a short list of rules; anything bigger is a mistake or an attack.
MAX_POLICY_BYTES = 1024 * 1024
#: Deeper than any valid policy (the schema's deepest path is about 8 levels).
MAX_DEPTH = 32
#: Errors reported per document; the rest are counted, not listed.
MAX_ERRORS = 20


class PolicyError(TypedDict):
    """One ``{"pointer": "/a/0", "message": "..."}`` entry of ``detail["errors"]``."""

    pointer: str
    message: str


def invalid(source: str, errors: list[PolicyError]) -> InvalidInput:
    """The one error raised for a bad document: every error with its JSON pointer.

    The message names the first error; ``detail["errors"]`` lists up to
    ``MAX_ERRORS`` of them (``detail["more_errors"]`` counts the rest).
    """
    first = errors[0]
    where = first["pointer"] or "/"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    detail: dict[str, object] = {
        "source": source,
        "errors": [dict(e) for e in errors[:MAX_ERRORS]],
    }
    if len(errors) > MAX_ERRORS:
        detail["more_errors"] = len(errors) - MAX_ERRORS
    return InvalidInput(f"{source}: {where}: {first['message']}{more}", detail=detail)


def error(pointer: str, message: str) -> PolicyError:
    """One error entry; the message is cut to 300 characters."""
    if len(message) > 300:
        message = message[:300] + "..."
    return PolicyError(pointer=pointer, message=message)


def pointer_of(parts: Iterable[object]) -> str:
    """RFC 6901 JSON pointer for a sequence of keys and indexes."""
    out = []
    for part in parts:
        out.append("/" + str(part).replace("~", "~0").replace("/", "~1"))
    return "".join(out)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and repeated mapping keys.

    Aliases let a few bytes describe an exponentially large tree ("billion
    laughs"). A repeated key is silently "last one wins" in PyYAML, so a
    reviewer reading the first of two ``mode:`` lines would be misled.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed in policies"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: let SafeLoader word the error
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"repeated key {str(key)[:80]!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


# JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 consumer
# (the schema validator, RE2, the database) can take.
_SURROGATE = "not valid Unicode (a lone surrogate, e.g. from a \\ud800 escape)"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_json(value: object, path: list[str | int], depth: int) -> PolicyError | None:
    """The first value that JSON cannot carry, or nesting past ``MAX_DEPTH``."""
    if depth > MAX_DEPTH:
        return error(pointer_of(path), f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return None if _encodable(value) else error(pointer_of(path), _SURROGATE)
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return error(pointer_of(path), f"not a finite number: {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return error(pointer_of([*path, str(key)]), f"key {key!r:.80} is not a string")
            if not _encodable(key):
                return error(pointer_of(path), f"a key: {_SURROGATE}")
            found = _check_json(item, [*path, key], depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _check_json(item, [*path, i], depth + 1)
            if found:
                return found
        return None
    kind = type(value).__name__
    return error(pointer_of(path), f"a {kind} is not a JSON value (quote it)")


def read_document(data: bytes, *, source: str) -> Any:
    """Parse policy bytes (YAML or JSON) into JSON values.

    Raises:
        InvalidInput: too large, not UTF-8, not YAML/JSON, aliases or repeated
            keys, nesting too deep, or a value JSON cannot carry (a YAML date);
            ``detail["errors"]`` has the pointer and message.
    """
    if not isinstance(data, bytes | bytearray):
        raise invalid(source, [error("", "a policy must be given as bytes")])
    if len(data) > MAX_POLICY_BYTES:
        message = f"policy is {len(data)} bytes, limit {MAX_POLICY_BYTES}"
        raise invalid(source, [error("", message)])
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(source, [error("", f"not UTF-8 ({e.reason} at byte {e.start})")]) from None
    try:
        if text.lstrip().startswith("{"):
            document = loads_strict(text, what="policy JSON")
        else:
            document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except InvalidInput as e:
        raise invalid(source, [error("", e.message)]) from None
    # ValueError/OverflowError: PyYAML's timestamp constructor on e.g.
    # "2026-13-40"; RecursionError: absurdly deep nesting.
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:
        raise invalid(source, [error("", f"not valid YAML: {str(e)[:200]}")]) from None
    try:
        found = _check_json(document, [], 0)
    except RecursionError:  # unreachable with MAX_DEPTH, kept as a fail-closed net
        found = error("", "nested too deeply")
    if found is not None:
        raise invalid(source, [found])
    return document
