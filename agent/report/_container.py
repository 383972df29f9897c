# SPDX-License-Identifier: Apache-2.0
"""The provenance report of one container, as sent to ``POST /v1/reports``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from agent.report._kinds import CheckResult, CheckScope, LayerStatus
from agent.report._time import format_time, parse_time, require_aware
from agent.report._violation import Violation
from attestor.digests import Digest, KeyId, parse_digest
from attestor.errors import InvalidInput
from attestor.schemas import validate

__all__ = ["API_VERSION", "ContainerReport", "ImageRef", "IntegrityCheck", "LayerReport"]

API_VERSION = "attestor.dev/v1alpha1"
_KIND = "ContainerReport"
_SCHEMA = "container-report"


@dataclass(frozen=True)
class ImageRef:
    """The image a container runs: name as containerd recorded it, manifest digest."""

    name: str
    digest: Digest

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("image name must not be empty")
        parse_digest(self.digest)


@dataclass(frozen=True)
class LayerReport:
    """One layer and its attestation chain. ``attestation_id``/``keyid`` are None
    unless an attestation was found."""

    index: int
    digest: Digest
    diff_id: Digest
    chain_id: Digest
    attestation_id: str | None
    keyid: KeyId | None
    status: LayerStatus

    def __post_init__(self) -> None:
        for value in (self.digest, self.diff_id, self.chain_id):
            parse_digest(value)
        if self.index < 0:
            raise InvalidInput(f"layer index must be >= 0, got {self.index}")


@dataclass(frozen=True)
class IntegrityCheck:
    """One integrity check of a lower layer (``layer``) or of the upperdir."""

    checked_at: datetime
    scope: CheckScope
    layer_digest: Digest | None
    result: CheckResult
    files_checked: int
    violations: int
    full_rehash: bool
    error: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "checked_at", require_aware(self.checked_at, "checked_at"))
        if self.layer_digest is not None:
            parse_digest(self.layer_digest)


@dataclass(frozen=True)
class ContainerReport:
    """What the agent knows about one container; ``finalized`` in the last one."""

    container_id: str
    image: ImageRef
    layers: tuple[LayerReport, ...]
    history: tuple[IntegrityCheck, ...]
    anomalies: tuple[Violation, ...]
    finalized: bool
    generated_at: datetime
    namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.container_id:
            raise InvalidInput("container_id must not be empty")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "anomalies", tuple(self.anomalies))
        object.__setattr__(self, "generated_at", require_aware(self.generated_at, "generated_at"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (schema ``container-report``).

        Raises:
            InvalidInput: if the report breaks a schema cap (e.g. too many entries).
        """
        doc: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": _KIND,
            "container_id": self.container_id,
            "image": {"name": self.image.name, "digest": self.image.digest},
            "layers": [
                {
                    "index": layer.index,
                    "digest": layer.digest,
                    "diff_id": layer.diff_id,
                    "chain_id": layer.chain_id,
                    "attestation_id": layer.attestation_id,
                    "keyid": layer.keyid,
                    "status": layer.status,
                }
                for layer in self.layers
            ],
            "history": [_check_to_dict(check) for check in self.history],
            "anomalies": [v.to_dict() for v in self.anomalies],
            "finalized": self.finalized,
            "generated_at": format_time(self.generated_at),
        }
        if self.namespace is not None:
            doc["namespace"] = self.namespace
        validate(doc, _SCHEMA)
        return doc

    @classmethod
    def from_dict(cls, doc: object) -> ContainerReport:
        """Parse a JSON object checked against schema ``container-report``.

        Raises:
            InvalidInput: if it does not match the schema or the invariants.
        """
        validate(doc, _SCHEMA)
        d = cast(dict[str, Any], doc)
        return cls(
            container_id=d["container_id"],
            image=ImageRef(name=d["image"]["name"], digest=Digest(d["image"]["digest"])),
            layers=tuple(
                LayerReport(
                    index=layer["index"],
                    digest=Digest(layer["digest"]),
                    diff_id=Digest(layer["diff_id"]),
                    chain_id=Digest(layer["chain_id"]),
                    attestation_id=layer["attestation_id"],
                    keyid=KeyId(layer["keyid"]) if layer["keyid"] is not None else None,
                    status=layer["status"],
                )
                for layer in d["layers"]
            ),
            history=tuple(_check_from_dict(c) for c in d["history"]),
            anomalies=tuple(Violation.from_dict(v) for v in d["anomalies"]),
            finalized=d["finalized"],
            generated_at=parse_time(d["generated_at"], "generated_at"),
            namespace=d.get("namespace"),
        )

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON."""
        return json.dumps(
            self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ContainerReport:
        """Parse JSON text.

        Raises:
            InvalidInput: if it is not JSON or not a valid report.
        """
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInput(f"container report: not JSON: {e}") from e
        return cls.from_dict(doc)


def _check_to_dict(check: IntegrityCheck) -> dict[str, Any]:
    out: dict[str, Any] = {
        "checked_at": format_time(check.checked_at),
        "scope": check.scope,
        "layer_digest": check.layer_digest,
        "result": check.result,
        "files_checked": check.files_checked,
        "violations": check.violations,
        "full_rehash": check.full_rehash,
    }
    if check.error is not None:
        out["error"] = check.error
    return out


def _check_from_dict(c: dict[str, Any]) -> IntegrityCheck:
    return IntegrityCheck(
        checked_at=parse_time(c["checked_at"], "checked_at"),
        scope=c["scope"],
        layer_digest=Digest(c["layer_digest"]) if c["layer_digest"] is not None else None,
        result=c["result"],
        files_checked=c["files_checked"],
        violations=c["violations"],
        full_rehash=c["full_rehash"],
        error=c.get("error"),
    )
