# SPDX-License-Identifier: Apache-2.0
"""Attestation conditions over real SLSA provenance made by slsa-github-generator.

The statements come from tests/assets/fixtures/provenance (see SOURCES.md).
Their signatures are not checked here (that is the verifier's job); the
engine is handed them as verified, as the evidence contract says.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestor.policy import VerifiedAttestation, VerifiedSigner, evaluate_image
from tests.unit.policy._build import NOW, evidence, key_authority, one_set, policy

GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
V02_BUILDER = GENERATOR + "generator_container_slsa3.yml@refs/tags/v2.1.0"
V1_BUILDER = GENERATOR + "builder_container-based_slsa3.yml@refs/tags/v2.1.0"
SOURCE = "git+https://github.com/slsa-framework/example-package"
SIGNER = VerifiedSigner(keyid="ab" * 32)


def _statement(asset: Callable[[str], Path], name: str) -> dict[str, Any]:
    doc = json.loads(asset(f"fixtures/provenance/{name}").read_text())
    envelope = doc.get("dsseEnvelope", doc)
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def _decide(statement: dict[str, Any], conditions: dict[str, Any], *, as_index: bool) -> bool:
    subject = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    att = VerifiedAttestation(
        predicate_type=statement["predicateType"],
        predicate=statement["predicate"],
        signer=SIGNER,
        subject_digests=(subject,),
    )
    p = policy(
        attestations=[
            {
                "name": "provenance",
                "predicate_type": statement["predicateType"],
                "authorities": [key_authority("k", "ab" * 32)],
                "conditions": conditions,
            }
        ]
    )
    # The v0.2 statement's subject is an image index digest: the image is the
    # platform manifest selected from it.
    if as_index:
        ev = evidence(attestations=(att,), index_digest=subject)
    else:
        ev = evidence(attestations=(att,), digest=subject)
    return evaluate_image(one_set(p), ev, NOW).allowed


@pytest.mark.parametrize(
    ("conditions", "allowed"),
    [
        ({"builder_id": [V02_BUILDER]}, True),
        ({"builder_id": [V1_BUILDER]}, False),
        (
            {
                "build_type": [
                    "https://github.com/slsa-framework/slsa-github-generator/container@v1"
                ]
            },
            True,
        ),
        ({"source_repository": [SOURCE], "source_ref": ["refs/heads/main"]}, True),
        ({"source_repository": [SOURCE], "source_ref": ["refs/tags/v1"]}, False),
        (
            {
                "fields": [
                    {
                        "path": "$.invocation.environment.github_event_name",
                        "values": ["workflow_dispatch"],
                    }
                ]
            },
            True,
        ),
        (
            {
                "fields": [
                    {"path": "$.invocation.environment.github_event_name", "values": ["push"]}
                ]
            },
            False,
        ),
    ],
)
def test_slsa_v02_from_the_generator(
    asset: Callable[[str], Path], conditions: dict[str, Any], allowed: bool
) -> None:
    statement = _statement(asset, "example-package-container.slsa-v0.2.dsse.json")
    assert _decide(statement, conditions, as_index=True) is allowed


@pytest.mark.parametrize(
    ("conditions", "allowed"),
    [
        ({"builder_id": [V1_BUILDER]}, True),
        ({"builder_id": [V02_BUILDER]}, False),
        ({"build_type": ["https://slsa.dev/container-based-build/v0.1?draft"]}, True),
        # externalParameters.source names the repository and ref.
        ({"source_repository": ["https://github.com/slsa-framework/example-package.git"]}, True),
        # resolvedDependencies also lists the generator, but externalParameters
        # names a source, so the generator's repository is not "the source".
        ({"source_repository": ["https://github.com/slsa-framework/slsa-github-generator"]}, False),
        ({"source_ref": ["refs/heads/main"]}, True),
        (
            {
                "fields": [
                    {
                        "path": "$.buildDefinition.internalParameters.GITHUB_RUN_ID",
                        "values": [13531731005],
                    }
                ]
            },
            True,
        ),
    ],
)
def test_slsa_v1_from_the_container_based_builder(
    asset: Callable[[str], Path], conditions: dict[str, Any], allowed: bool
) -> None:
    statement = _statement(asset, "container-based-builder.slsa-v1.sigstore.json")
    assert _decide(statement, conditions, as_index=False) is allowed
