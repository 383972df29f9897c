# SPDX-License-Identifier: Apache-2.0
"""The attestations rule: type, signer, subject and provenance conditions."""

from __future__ import annotations

from typing import Any

import pytest

from attestor.policy import Decision, RuleResult, evaluate_image
from tests.unit.policy._build import (
    BUILDER,
    DIGEST,
    INDEX_DIGEST,
    NOW,
    OTHER_DIGEST,
    SLSA_V1,
    WORKFLOW,
    attestation,
    evidence,
    key_authority,
    key_signer,
    keyless_authority,
    keyless_signer,
    one_set,
    policy,
    provenance_v1,
)

SLSA_V02 = "https://slsa.dev/provenance/v0.2"


def _requirement(**conditions: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "name": "provenance",
        "predicate_type": SLSA_V1,
        "authorities": [keyless_authority("ci", WORKFLOW)],
    }
    if conditions:
        req["conditions"] = conditions
    return req


def _decide(req: dict[str, Any], *atts: Any, **kw: Any) -> tuple[Decision, RuleResult]:
    p = policy(attestations=[req])
    decision = evaluate_image(one_set(p), evidence(attestations=atts, **kw), NOW)
    (result,) = decision.results
    return decision, next(r for r in result.rules if r.rule == "attestations/provenance")


def test_builder_condition_met() -> None:
    decision, rule = _decide(_requirement(builder_id=[BUILDER]), attestation(keyless_signer()))
    assert decision.allowed
    assert rule.status == "passed"
    assert [a.to_dict() for a in rule.authorities] == [
        {
            "authority": "ci",
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": WORKFLOW,
        }
    ]
    assert rule.reason == (
        f"{SLSA_V1} attestation signed by ci ({WORKFLOW} from "
        "https://token.actions.githubusercontent.com) meets its conditions"
    )


def test_wrong_builder_refused_with_reason() -> None:
    evil = provenance_v1(builder="https://evil.example/builder")
    decision, rule = _decide(
        _requirement(builder_id=[BUILDER]), attestation(keyless_signer(), evil)
    )
    assert not decision.allowed
    assert rule.status == "failed"
    assert rule.reason.startswith(f"no {SLSA_V1} attestation qualifies: one by ci: builder id is ")
    assert "'https://evil.example/builder', not one of" in rule.reason


def test_signed_by_someone_else_refused() -> None:
    att = attestation(key_signer("ee" * 32))
    decision, rule = _decide(_requirement(builder_id=[BUILDER]), att)
    assert not decision.allowed
    assert "signed by key eeeeeeeeeeeeeeee…, not an authority" in rule.reason


def test_attestation_about_another_image_refused() -> None:
    att = attestation(keyless_signer(), subjects=(OTHER_DIGEST,))
    decision, rule = _decide(_requirement(), att)
    assert not decision.allowed
    assert "one is about other subjects (sha256:bbbbbbbbbbbb…)" in rule.reason


def test_attestation_about_the_index_counts() -> None:
    att = attestation(keyless_signer(), subjects=(INDEX_DIGEST,))
    decision, _ = _decide(_requirement(), att, index_digest=INDEX_DIGEST)
    assert decision.allowed


def test_missing_type_and_not_gathered() -> None:
    decision, rule = _decide(_requirement())
    assert (decision.allowed, rule.reason) == (False, f"no {SLSA_V1} attestation was found")
    other_type = attestation(keyless_signer(), predicate_type="https://example/other")
    assert not _decide(_requirement(), other_type)[0].allowed
    p = policy(attestations=[_requirement()])
    refused = evaluate_image(one_set(p), evidence(attestations=None), NOW)
    assert not refused.allowed
    assert "attestations: not gathered for this image (fail closed)" in refused.reasons[0]


def test_one_good_attestation_among_bad_ones_passes() -> None:
    bad = attestation(keyless_signer(), provenance_v1(builder="https://evil.example/b"))
    good = attestation(keyless_signer())
    decision, rule = _decide(_requirement(builder_id=[BUILDER]), bad, good)
    assert decision.allowed and rule.status == "passed"


@pytest.mark.parametrize(
    ("conditions", "passes"),
    [
        ({"source_repository": ["git+https://github.com/example/app"]}, True),
        ({"source_repository": ["https://github.com/example/app.git"]}, True),
        ({"source_repository": ["https://github.com/example/other"]}, False),
        (
            {
                "source_repository": ["https://github.com/example/app"],
                "source_ref": ["refs/heads/main"],
            },
            True,
        ),
        ({"source_ref": ["refs/heads/release"]}, False),
        (
            {
                "build_type": [
                    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
                ]
            },
            True,
        ),
        ({"build_type": ["https://example/other"]}, False),
        (
            {
                "fields": [
                    {
                        "path": "$.buildDefinition.externalParameters.workflow.path",
                        "values": [".github/workflows/release.yml"],
                    }
                ]
            },
            True,
        ),
        ({"fields": [{"path": "$['runDetails']['metadata'].invocationId", "values": ["1"]}]}, True),
        # Same JSON type only: the string "1" is not the integer 1.
        ({"fields": [{"path": "$.runDetails.metadata.invocationId", "values": [1]}]}, False),
        (
            {
                "fields": [
                    {
                        "path": "$.buildDefinition.resolvedDependencies[0].digest.gitCommit",
                        "values": ["ab" * 20],
                    }
                ]
            },
            True,
        ),
        (
            {
                "fields": [
                    {"path": "$.buildDefinition.resolvedDependencies[1].uri", "values": ["x"]}
                ]
            },
            False,
        ),
        ({"fields": [{"path": "$.nope", "values": [True]}]}, False),
    ],
)
def test_conditions(conditions: dict[str, Any], passes: bool) -> None:
    decision, rule = _decide(_requirement(**conditions), attestation(keyless_signer()))
    assert decision.allowed is passes, rule.reason


def test_source_from_resolved_dependencies_when_external_parameters_name_none() -> None:
    predicate = provenance_v1(repository="https://github.com/example/app", ref="refs/tags/v1")
    predicate["buildDefinition"]["externalParameters"] = {"inputs": {}}
    req = _requirement(
        source_repository=["https://github.com/example/app"], source_ref=["refs/tags/v1"]
    )
    assert _decide(req, attestation(keyless_signer(), predicate))[0].allowed
    wrong = _requirement(source_ref=["refs/heads/main"])
    decision, rule = _decide(wrong, attestation(keyless_signer(), predicate))
    assert not decision.allowed
    assert (
        "source git+https://github.com/example/app@refs/tags/v1 is not refs/heads/main"
        in rule.reason
    )


def test_slsa_v02_provenance() -> None:
    predicate = {
        "builder": {"id": BUILDER},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
        "invocation": {
            "configSource": {
                "uri": "git+https://github.com/example/app@refs/heads/main",
                "digest": {"sha1": "ab" * 20},
                "entryPoint": ".github/workflows/release.yml",
            }
        },
        "materials": [{"uri": "git+https://github.com/example/app@refs/heads/main"}],
    }
    req = {
        "name": "provenance",
        "predicate_type": SLSA_V02,
        "authorities": [key_authority("k", "ab" * 32)],
        "conditions": {
            "builder_id": [BUILDER],
            "source_repository": ["https://github.com/example/app"],
            "source_ref": ["refs/heads/main"],
        },
    }
    att = attestation(key_signer("ab" * 32), predicate, predicate_type=SLSA_V02)
    assert _decide(req, att)[0].allowed
    predicate["builder"] = {"id": "https://evil.example/b"}
    assert not _decide(req, att)[0].allowed
    assert DIGEST in evidence().image.digests()
