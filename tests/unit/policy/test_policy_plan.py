# SPDX-License-Identifier: Apache-2.0
"""evidence_plan: what the adapter must gather for an image."""

from __future__ import annotations

from attestor.policy import evidence_plan
from tests.unit.policy._build import (
    REGISTRY,
    SLSA_V1,
    WORKFLOW,
    key_authority,
    keyless_authority,
    one_set,
    policy,
)


def test_plan_follows_applying_policies() -> None:
    signed = policy(
        id="signed",
        signatures={"authorities": [key_authority("k", "ab" * 32)]},
        attestations=[
            {
                "name": "prov",
                "predicate_type": SLSA_V1,
                "authorities": [keyless_authority("ci", WORKFLOW)],
            }
        ],
    )
    aged = policy(id="aged", max_age="1d", forbidden_base_layers=["sha256:" + "1" * 12])
    other = policy(
        id="other",
        scope=[{"registry": "elsewhere.example.com"}],
        rules=[{"name": "r", "expression": "size(attestations) > 0"}],
    )
    ps = one_set(signed, aged, other)
    plan = evidence_plan(ps, REGISTRY, "team/app")
    assert plan.policies == ("aged", "signed")
    assert (plan.signatures, plan.attestations, plan.config, plan.layers) == (True,) * 4
    assert plan.predicate_types == (SLSA_V1,)
    assert not plan.all_predicate_types
    assert [a.name for a in plan.authorities] == ["k", "ci"]
    elsewhere = evidence_plan(ps, "elsewhere.example.com", "x")
    assert elsewhere.policies == ("other",)
    assert (elsewhere.signatures, elsewhere.attestations, elsewhere.config) == (False, True, False)
    assert elsewhere.all_predicate_types
    nothing = evidence_plan(ps, "ghcr.io", "x")
    assert nothing.policies == () and not nothing.signatures and nothing.authorities == ()
