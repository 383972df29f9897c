# SPDX-License-Identifier: Apache-2.0
"""Loads the JSON Schemas in ``schemas/`` and validates documents against them.

``schemas/`` is the single source for each document format. In a checkout the
files are read from the repository's ``schemas/``; in an installed wheel from
``attestor/_schemas`` (see ``[tool.hatch.build.targets.wheel.force-include]``).
Schemas may ``$ref`` each other by ``$id`` (or a relative file name that
resolves to one); nothing is ever fetched over the network.

Validation uses ``jsonschema-rs``: it sits on the verification hot path, where
the pure-Python ``jsonschema`` took ~1 ms per SLSA predicate (about 10 ECDSA
verifies' worth) against ~12 us here (bench/bench_verify.py).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from attestor.errors import ConfigError, InvalidInput

__all__ = ["load_schema", "schema_dir", "validate"]

_SUFFIX = ".schema.json"
_MAX_MESSAGE = 300


@functools.cache
def schema_dir() -> Path:
    """The directory the schemas are read from.

    Raises:
        ConfigError: if neither the repository's nor the installed copy exists.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schemas", here / "_schemas"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"no schemas directory next to {here}")


def _file_name(schema_name: str) -> str:
    name = schema_name if schema_name.endswith(".json") else schema_name + _SUFFIX
    # Names come from our code, but never let one escape the directory.
    if "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"bad schema name {schema_name!r}")
    return name


def _load(name: str) -> dict[str, Any]:
    path = schema_dir() / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"schema {name} not found in {schema_dir()}") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"schema {name} unreadable: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"schema {name} is not a JSON object")
    return data


def load_schema(schema_name: str) -> dict[str, Any]:
    """The parsed schema document ``schemas/<schema_name>.schema.json``.

    Raises:
        ConfigError: if the schema is missing or not a JSON object.
    """
    return _load(_file_name(schema_name))


@functools.cache
def _registry() -> jsonschema_rs.Registry:
    # Every schema of the directory, under its $id, so cross-file $refs resolve
    # locally and offline.
    resources: list[tuple[str, Any]] = []
    for path in sorted(schema_dir().glob("*" + _SUFFIX)):
        contents = _load(path.name)
        uri = contents.get("$id")
        if isinstance(uri, str):
            resources.append((uri, contents))
    try:
        return jsonschema_rs.Registry(resources)
    except (ValueError, jsonschema_rs.ReferencingError) as e:
        raise ConfigError(f"schemas in {schema_dir()} do not load: {e}") from None


@functools.cache
def _validator(schema_name: str) -> Any:
    name = _file_name(schema_name)
    schema = _load(name)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as e:
        raise ConfigError(f"schema {name} is invalid: {e.message[:_MAX_MESSAGE]}") from None
    try:
        return jsonschema_rs.validator_for(
            schema, registry=_registry(), validate_formats=True, offline=True
        )
    except (ValueError, jsonschema_rs.ReferencingError) as e:
        raise ConfigError(f"schema {name} does not load: {e}") from None


def _json_path(instance_path: list[str | int]) -> str:
    parts = ["$"]
    for part in instance_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


def _first_non_json(value: object, path: str) -> str | None:
    """JSON path of the first value that is not JSON data (error path only)."""
    if value is None or isinstance(value, bool | int | float | str):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]"
            found = _first_non_json(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _first_non_json(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return path


def validate(document: object, schema_name: str) -> None:
    """Validate ``document`` against ``schemas/<schema_name>.schema.json``.

    ``schema_name`` may be given with or without the ``.schema.json`` suffix.

    Raises:
        InvalidInput: naming the JSON path (``$.a.b[0]``) and reason of the first error.
        ConfigError: if the schema is missing or itself invalid.
    """
    validator = _validator(schema_name)
    try:
        if validator.is_valid(document):
            return
        error = next(iter(validator.iter_errors(document)))
    except (ValueError, TypeError, OverflowError) as e:
        # A value JSON cannot carry (a YAML date, a set, a non-string key, ...).
        where = _first_non_json(document, "$") or "$"
        raise InvalidInput(
            f"{schema_name}: {where}: not a JSON value ({e})",
            detail={"schema": schema_name, "path": where},
        ) from None
    path = _json_path(list(error.instance_path))
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    raise InvalidInput(
        f"{schema_name}: {path}: {message}", detail={"schema": schema_name, "path": path}
    )
