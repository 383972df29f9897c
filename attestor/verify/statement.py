# SPDX-License-Identifier: Apache-2.0
"""Parse and check the in-toto Statement inside a verified DSSE payload.

Decisions (fail closed, cosign-compatible):

* payloadType must be ``application/vnd.in-toto+json``.
* ``_type`` must be ``https://in-toto.io/Statement/v1``. v0.1 is refused: we
  only issue v1, and v0.1's ``predicateType``/subject rules differ.
* Exactly the top-level members ``_type``, ``subject``, ``predicateType`` and
  ``predicate``: like cosign's strict parse, an unknown member fails.
* Duplicate JSON keys, NaN/Infinity and non-UTF-8 payloads are refused, so no
  two JSON parsers can read different statements from the same signed bytes.
* Every subject has a name and a lowercase sha256 digest; when an artifact
  digest is given, one subject's sha256 must equal it.
* The predicateType must be allowed, and the predicate must validate against
  the JSON Schema registered for that type.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from attestor import schemas
from attestor.dsse import IN_TOTO_PAYLOAD_TYPE
from attestor.errors import InvalidInput, VerificationError
from attestor.json_strict import loads_strict
from attestor.verify.result import Subject

__all__ = [
    "DEFAULT_PREDICATE_SCHEMAS",
    "STATEMENT_V1_TYPE",
    "check_predicate",
    "match_subject",
    "normalize_artifact_digest",
    "parse_statement",
]

STATEMENT_V1_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

#: predicateType -> schema name in ``schemas/``.
DEFAULT_PREDICATE_SCHEMAS: Mapping[str, str] = {SLSA_PROVENANCE_V1: "slsa-provenance-v1"}

_TOP_LEVEL = frozenset({"_type", "subject", "predicateType", "predicate"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")  # fullmatch: "$" would let a final "\n" through
_ARTIFACT_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
_MAX_SUBJECTS = 1024


def normalize_artifact_digest(artifact_digest: str) -> str:
    """``sha256:<hex>`` or ``<hex>`` -> ``<hex>``.

    Raises:
        InvalidInput: if it is not a lowercase sha256 digest.
    """
    match = _ARTIFACT_DIGEST.match(artifact_digest) if isinstance(artifact_digest, str) else None
    if match is None:
        raise InvalidInput(f"artifact digest is not sha256: {str(artifact_digest)[:80]!r}")
    return match.group(1)


def parse_statement(
    payload_type: str, payload: bytes
) -> tuple[dict[str, Any], tuple[Subject, ...]]:
    """Parse the signed payload into the statement and its subjects.

    Raises:
        VerificationError: if the payload is not a well-formed in-toto Statement v1.
    """
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            f"payloadType must be {IN_TOTO_PAYLOAD_TYPE}, got {payload_type[:80]!r}"
        )
    try:
        statement = loads_strict(payload, what="statement")
    except InvalidInput as e:  # signed bytes that do not parse fail verification
        raise VerificationError(e.message) from None
    if not isinstance(statement, dict):
        raise VerificationError(f"statement: expected an object, got {type(statement).__name__}")
    if not statement.keys() <= _TOP_LEVEL:
        unknown = set(statement) - _TOP_LEVEL
        raise VerificationError(f"statement: unknown member(s) {sorted(unknown)[:5]}")
    if statement.get("_type") != STATEMENT_V1_TYPE:
        got = str(statement.get("_type"))[:80]
        raise VerificationError(f"statement: _type must be {STATEMENT_V1_TYPE}, got {got!r}")
    if not isinstance(statement.get("predicateType"), str) or not statement["predicateType"]:
        raise VerificationError("statement: predicateType must be a non-empty string")
    if not isinstance(statement.get("predicate"), dict):
        raise VerificationError("statement: predicate must be an object")
    return statement, _subjects(statement.get("subject"))


def _subjects(raw: object) -> tuple[Subject, ...]:
    if not isinstance(raw, list) or not raw:
        raise VerificationError("statement: subject must be a non-empty list")
    if len(raw) > _MAX_SUBJECTS:
        raise VerificationError(f"statement: at most {_MAX_SUBJECTS} subjects, got {len(raw)}")
    subjects: list[Subject] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise VerificationError(f"statement: subject[{i}] must be an object")
        name = item.get("name", "")
        digest = item.get("digest")
        if not isinstance(name, str):
            raise VerificationError(f"statement: subject[{i}].name must be a string")
        if not isinstance(digest, dict):
            raise VerificationError(f"statement: subject[{i}].digest must map strings to strings")
        pairs = sorted(digest.items())
        # Keys are strings in any parsed JSON; only the values need a check.
        for _, value in pairs:
            if type(value) is not str:
                raise VerificationError(
                    f"statement: subject[{i}].digest must map strings to strings"
                )
        if not _SHA256_HEX.fullmatch(digest.get("sha256", "")):
            raise VerificationError(f"statement: subject[{i}] has no lowercase sha256 digest")
        subjects.append(Subject(name=name, digest=tuple(pairs)))
    return tuple(subjects)


def match_subject(subjects: tuple[Subject, ...], artifact_sha256: str) -> Subject:
    """The subject whose sha256 equals ``artifact_sha256`` (hex).

    Raises:
        VerificationError: if none does.
    """
    for subject in subjects:
        if subject.sha256 == artifact_sha256:
            return subject
    raise VerificationError(
        f"no subject has sha256 {artifact_sha256}",
        detail={"subjects": [s.sha256 for s in subjects][:16]},
    )


@functools.cache
def _schema_covers_statement(schema_name: str) -> bool:
    # A schema may describe the predicate alone or the whole statement; tell
    # them apart once by whether it declares the statement's members.
    properties = schemas.load_schema(schema_name).get("properties", {})
    return isinstance(properties, dict) and "predicateType" in properties


def check_predicate(
    statement: Mapping[str, Any],
    *,
    allowed_predicate_types: frozenset[str],
    predicate_schemas: Mapping[str, str],
) -> str:
    """Check the predicateType is allowed and the predicate matches its schema.

    Returns:
        The predicateType.

    Raises:
        VerificationError: if the type is not allowed, has no schema, or the
            predicate does not validate (the message names the JSON path).
    """
    predicate_type: str = statement["predicateType"]
    if predicate_type not in allowed_predicate_types:
        raise VerificationError(
            f"predicateType {predicate_type[:120]!r} not allowed",
            detail={"allowed": sorted(allowed_predicate_types)},
        )
    schema_name = predicate_schemas.get(predicate_type)
    if schema_name is None:
        raise VerificationError(f"no schema for predicateType {predicate_type!r}")
    document: object = (
        statement if _schema_covers_statement(schema_name) else statement["predicate"]
    )
    try:
        schemas.validate(document, schema_name)
    except InvalidInput as e:
        raise VerificationError(f"predicate invalid: {e.message}", detail=e.detail) from None
    return predicate_type
