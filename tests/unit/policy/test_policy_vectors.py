# SPDX-License-Identifier: Apache-2.0
"""tests/assets/policy-vectors: documents + evidence -> the exact decision JSON.

Each vector names policy documents (YAML text), evidence (the JSON form
below) and an evaluation time, and holds the decision's ``to_dict()``. The
evidence JSON mirrors ``attestor.policy.evidence``: ``image`` (registry,
repository, manifest_digest, index_digest, config, layer_digests, diff_ids),
``signatures`` and ``attestations`` (``null`` = not gathered), each signature
and attestation with a ``signer`` (keyid / signer_uri / issuer + subject).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from attestor import schemas
from attestor.policy import (
    Decision,
    Evidence,
    ImageEvidence,
    PolicySet,
    VerifiedAttestation,
    VerifiedSignature,
    VerifiedSigner,
    evaluate_image,
    parse_policy,
)

VECTORS = "policy-vectors/vectors.json"


def _evidence(doc: dict[str, Any]) -> Evidence:
    image = doc["image"]
    sigs = doc.get("signatures")
    atts = doc.get("attestations")
    return Evidence(
        image=ImageEvidence(
            registry=image["registry"],
            repository=image["repository"],
            manifest_digest=image.get("manifest_digest"),
            index_digest=image.get("index_digest"),
            config=image.get("config"),
            layer_digests=None
            if image.get("layer_digests") is None
            else tuple(image["layer_digests"]),
            diff_ids=None if image.get("diff_ids") is None else tuple(image["diff_ids"]),
        ),
        signatures=None
        if sigs is None
        else tuple(
            VerifiedSignature(
                signer=VerifiedSigner(**s["signer"]),
                manifest_digest=s["manifest_digest"],
                docker_reference=s.get("docker_reference", ""),
            )
            for s in sigs
        ),
        attestations=None
        if atts is None
        else tuple(
            VerifiedAttestation(
                predicate_type=a["predicate_type"],
                predicate=a["predicate"],
                signer=VerifiedSigner(**a["signer"]),
                subject_digests=tuple(a["subject_digests"]),
            )
            for a in atts
        ),
    )


def decide(vector: dict[str, Any]) -> Decision:
    """The decision for one vector's inputs (also used by make_vectors.py)."""
    policies = tuple(
        parse_policy(text.encode(), source=f"{vector['name']}[{i}]")
        for i, text in enumerate(vector["policies"])
    )
    now = datetime.fromisoformat(vector["now"].replace("Z", "+00:00"))
    return evaluate_image(PolicySet(policies), _evidence(vector["evidence"]), now)


def _vectors() -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parents[2] / "assets" / VECTORS
    return list(json.loads(path.read_text(encoding="utf-8"))["vectors"])


def test_vector_file_is_found(asset: Callable[[str], Path]) -> None:
    assert len(json.loads(asset(VECTORS).read_text())["vectors"]) == len(_vectors()) >= 9


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_vector(vector: dict[str, Any]) -> None:
    expected = vector["decision"]
    schemas.validate(expected, "policy-decision")
    decision = decide(vector)
    assert decision.to_dict() == expected
    assert json.loads(decision.to_json()) == expected
