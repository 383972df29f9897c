# SPDX-License-Identifier: Apache-2.0
"""Every schema error of a policy document, each with its JSON pointer (pure).

``attestor.schemas.validate`` stops at the first error, which suits signed
documents on the hot path; an administrator editing a policy wants all of
them at once, so this walks the same validator library's ``iter_errors``
(jsonschema-rs) over the same ``schemas/policy.schema.json``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema_rs

from attestor import schemas
from attestor.errors import ConfigError
from attestor.policy._document import PolicyError, error, pointer_of

__all__ = ["POLICY_SCHEMA", "schema_errors"]

#: ``schemas/policy.schema.json``: every policy document must meet it.
POLICY_SCHEMA = "policy"

# Wording for the three "exactly one of" choices, clearer than the library's
# "... is not valid under any of the schemas listed in the 'oneOf' keyword"
# followed by the whole object.
_ONE_OF_ROOT = "give either 'scope' or 'registries' (the legacy form), not both"
_ONE_OF_KEYLESS = "give exactly one of 'subject' or 'subject_regex'"
_ONE_OF_AUTHORITY = "an authority has exactly one of 'key' or 'keyless'"


@functools.cache
def _validator() -> Any:
    schema = schemas.load_schema(POLICY_SCHEMA)
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as e:
        raise ConfigError(f"schema {POLICY_SCHEMA} is invalid: {str(e)[:300]}") from None


def _entry(e: jsonschema_rs.ValidationError) -> PolicyError:
    path = list(e.instance_path)
    kind = type(e.kind).__name__
    if kind in ("OneOfNotValid", "OneOfMultipleValid"):
        if not path:
            return error("", _ONE_OF_ROOT)
        if path[-1] == "keyless":
            return error(pointer_of(path), _ONE_OF_KEYLESS)
        return error(pointer_of(path), _ONE_OF_AUTHORITY)
    context = getattr(e.kind, "context", None)
    if kind == "AnyOf" and context and context[0]:
        return _entry(context[0][0])
    return error(pointer_of(path), _shorten_instance(e.message, e.instance))


def _shorten_instance(message: str, instance: object) -> str:
    """Cut the offending value quoted at the start of a message to 60 characters.

    The library starts many messages with the whole value ("<value> is longer
    than 2048 characters"); for a long value the useful part would be lost
    when the message is cut to 300 characters.
    """
    try:
        quoted = json.dumps(instance, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return message
    if len(quoted) > 60 and message.startswith(quoted):
        return quoted[:60] + "…" + message[len(quoted) :]
    return message


def schema_errors(document: Any) -> list[PolicyError]:
    """The schema errors of ``document``, ordered by pointer (empty when valid).

    Raises:
        ConfigError: if the schema itself is missing or invalid.
    """
    validator = _validator()
    if validator.is_valid(document):
        return []
    found = {(x["pointer"], x["message"]): x for x in map(_entry, validator.iter_errors(document))}
    return [found[k] for k in sorted(found)]
