# SPDX-License-Identifier: Apache-2.0
"""A violation: one finding of the agent, as sent to ``POST /v1/violations``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from agent.report._kinds import (
    AGENT_KINDS,
    LAYER_KINDS,
    SCAN_KINDS,
    VIOLATION_KINDS,
    ViolationKind,
)
from agent.report._time import format_time, parse_time, require_aware
from attestor.digests import Digest, parse_digest
from attestor.errors import InvalidInput, TooLarge
from attestor.schemas import validate
from attestor.violation_kinds import MAX_DETAIL_BYTES

__all__ = ["MAX_DETAIL_BYTES", "Violation"]

_SCHEMA = "violation"
#: Kinds that may have no path: a whole layer, a new file of no layer, or a
#: whole snapshot the agent could not check.
_PATHLESS = LAYER_KINDS | SCAN_KINDS | AGENT_KINDS | {"drift-new-executable"}
#: The one kind that may name no image digest: a running container whose
#: image containerd can no longer resolve, and whose digest the agent never saw.
_DIGESTLESS = frozenset({"unverified"}) | AGENT_KINDS


def _check_uuid(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except (TypeError, ValueError, AttributeError) as e:
        raise InvalidInput(f"violation id is not a UUID: {str(value)[:60]!r}") from e
    if str(parsed) != value:
        raise InvalidInput(f"violation id must be a lowercase hyphenated UUID, got {value!r}")
    return value


@dataclass(frozen=True)
class Violation:
    """One finding. ``id`` is the idempotency key: keep it across retries.

    ``path`` and ``layer_digest`` are None when the finding has no single file
    (``unattested``, ``bad-signature``, ``revoked``, ``unverified``, an
    ``unscannable`` whole snapshot) or no attested layer
    (``drift-new-executable``, ``unscannable`` in an upperdir).
    ``image_digest`` is None only for an ``unverified`` container whose image
    is gone from containerd and was never seen by this agent.
    A ``trust-anomaly`` (the agent refused the server's key set) is about
    the agent: its ``container_id``, digests and path are all None.
    """

    id: str
    container_id: str | None
    image_digest: Digest | None
    layer_digest: Digest | None
    path: str | None
    kind: ViolationKind
    detail: Mapping[str, Any] = field(hash=False)
    detected_at: datetime

    def __post_init__(self) -> None:
        _check_uuid(self.id)
        if self.kind in AGENT_KINDS:
            if (self.container_id, self.image_digest, self.layer_digest, self.path) != (
                (None,) * 4
            ):
                raise InvalidInput(f"a {self.kind!r} violation names no container")
        elif not self.container_id:
            raise InvalidInput("violation container_id must not be empty")
        if self.image_digest is not None:
            parse_digest(self.image_digest)
        elif self.kind not in _DIGESTLESS:
            raise InvalidInput(f"a {self.kind!r} violation needs an image digest")
        if self.layer_digest is not None:
            parse_digest(self.layer_digest)
        if self.kind not in VIOLATION_KINDS:
            raise InvalidInput(f"unknown violation kind {self.kind!r}")
        if self.path is None and self.kind not in _PATHLESS:
            raise InvalidInput(f"a {self.kind!r} violation needs a path")
        if self.path is not None and not self.path:
            raise InvalidInput("violation path must be None or non-empty")
        try:
            detail_json = json.dumps(dict(self.detail), allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"violation detail is not JSON: {e}") from e
        if len(detail_json.encode()) > MAX_DETAIL_BYTES:
            raise TooLarge(f"violation detail over {MAX_DETAIL_BYTES} bytes")
        # A private copy: the caller's dict must not change a frozen value.
        object.__setattr__(self, "detail", json.loads(detail_json))
        object.__setattr__(self, "detected_at", require_aware(self.detected_at, "detected_at"))

    @classmethod
    def create(
        cls,
        *,
        container_id: str | None,
        image_digest: Digest | None,
        layer_digest: Digest | None,
        path: str | None,
        kind: ViolationKind,
        detected_at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> Violation:
        """A new violation with a fresh random id.

        Raises:
            InvalidInput: if a field is malformed.
        """
        return cls(
            id=str(uuid.uuid4()),
            container_id=container_id,
            image_digest=image_digest,
            layer_digest=layer_digest,
            path=path,
            kind=kind,
            detail=dict(detail or {}),
            detected_at=detected_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (schema ``violation``)."""
        doc = {
            "id": self.id,
            "container_id": self.container_id,
            "image_digest": self.image_digest,
            "layer_digest": self.layer_digest,
            "path": self.path,
            "kind": self.kind,
            "detail": dict(self.detail),
            "detected_at": format_time(self.detected_at),
        }
        validate(doc, _SCHEMA)
        return doc

    @classmethod
    def from_dict(cls, doc: object) -> Violation:
        """Parse a JSON object checked against schema ``violation``.

        Raises:
            InvalidInput: if it does not match the schema or the invariants.
        """
        validate(doc, _SCHEMA)
        d = cast(dict[str, Any], doc)
        return cls(
            id=d["id"],
            container_id=d["container_id"],
            image_digest=Digest(d["image_digest"]) if d["image_digest"] is not None else None,
            layer_digest=Digest(d["layer_digest"]) if d["layer_digest"] is not None else None,
            path=d["path"],
            kind=d["kind"],
            detail=d["detail"],
            detected_at=parse_time(d["detected_at"], "detected_at"),
        )

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON."""
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Violation:
        """Parse JSON text.

        Raises:
            InvalidInput: if it is not JSON or not a valid violation.
        """
        return cls.from_dict(_loads(data, "violation"))


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _loads(data: bytes | str, what: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{what}: not JSON: {e}") from e
