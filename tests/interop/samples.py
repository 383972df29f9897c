# SPDX-License-Identifier: Apache-2.0
"""Sample statements shared by the signing, verify and interop tests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
LAYER_BYTES = b"a layer blob that the statement's subject names"
LAYER_SHA256 = hashlib.sha256(LAYER_BYTES).hexdigest()


def slsa_statement(sha256: str = LAYER_SHA256, **overrides: Any) -> dict[str, Any]:
    """An in-toto Statement v1 with a SLSA provenance v1 predicate for one layer."""
    statement: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"example/app@sha256:{sha256}", "digest": {"sha256": sha256}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                # Not attestor.dev/layer/v1: that buildType has a closed schema owned by
                # attestor.statement; this sample only needs the generic SLSA v1 shape.
                "buildType": "https://attestor.test/sample-build/v1",
                "externalParameters": {
                    "image": "127.0.0.1:5000/example/app@sha256:" + "1" * 64,
                    "manifestDigest": "sha256:" + "1" * 64,
                    "layerIndex": 0,
                },
                "internalParameters": {"policyId": "dev", "policyVersion": "1"},
                "resolvedDependencies": [
                    {"uri": "oci://127.0.0.1:5000/example/app", "digest": {"sha256": "1" * 64}}
                ],
            },
            "runDetails": {
                "builder": {"id": "https://attestor.test/instance/unit"},
                "metadata": {
                    "invocationId": "00000000-0000-4000-8000-000000000000",
                    "startedOn": "2026-01-01T00:00:00Z",
                    "finishedOn": "2026-01-01T00:00:01Z",
                },
            },
        },
    }
    statement.update(overrides)
    return statement


def statement_bytes(statement: dict[str, Any]) -> bytes:
    """Deterministic JSON bytes of a statement."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def require_slsa_schema() -> None:
    """Skip (fail under CI) while schemas/slsa-provenance-v1.schema.json is absent."""
    from attestor.schemas import schema_dir
    from tests.harness.binaries import unavailable

    if not (schema_dir() / "slsa-provenance-v1.schema.json").is_file():
        unavailable("schemas/slsa-provenance-v1.schema.json is not written yet")
