# SPDX-License-Identifier: Apache-2.0
"""What an adapter must gather for one image, given the applying policies (pure).

The evidence adapter asks this before fetching: which artifacts the
applying policies look at, and which authorities (keys, signer URIs,
keyless identities) it must verify signatures against. Gathering less than
the plan says makes the rules that needed it fail closed; gathering more is
harmless but wasted work.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestor.policy.model import PolicySet
from attestor.policy.sections import Authority

__all__ = ["EvidencePlan", "evidence_plan"]


@dataclass(frozen=True)
class EvidencePlan:
    """What to fetch and verify for one image.

    Attributes:
        policies: Ids of the applying policies (empty: the image is refused
            by name; fetch nothing).
        signatures: Fetch and verify image signatures (``.sig``, bundles).
        attestations: Fetch and verify attestations (``.att``, bundles).
        predicate_types: The predicate types requirements name; a CEL rule
            over ``attestations`` may look at any type, so with
            ``all_predicate_types`` every verified attestation is wanted.
        all_predicate_types: A CEL rule reads ``attestations``.
        config: Fetch the image config (``max_age``, CEL rules).
        layers: The layer digests and diffIDs are needed.
        authorities: Every authority of the applying policies, in policy,
            section and document order (duplicates kept: two policies may
            name the same key under different names).
    """

    policies: tuple[str, ...]
    signatures: bool
    attestations: bool
    predicate_types: tuple[str, ...]
    all_predicate_types: bool
    config: bool
    layers: bool
    authorities: tuple[Authority, ...]


def evidence_plan(policy_set: PolicySet, registry: str, repository: str) -> EvidencePlan:
    """The plan for ``registry/repository`` under ``policy_set``."""
    applying = [p for p in policy_set.policies if p.matching_rule(registry, repository)]
    authorities: list[Authority] = []
    types: list[str] = []
    for policy in applying:
        if policy.signatures is not None:
            authorities.extend(policy.signatures.authorities)
        for req in policy.attestations:
            authorities.extend(req.authorities)
            if req.predicate_type not in types:
                types.append(req.predicate_type)
    rules_use = {name for p in applying for rule in p.rules for name in rule.program.uses}
    return EvidencePlan(
        policies=tuple(p.id for p in applying),
        signatures=any(p.signatures is not None for p in applying) or "signatures" in rules_use,
        attestations=bool(types) or "attestations" in rules_use,
        predicate_types=tuple(types),
        all_predicate_types="attestations" in rules_use,
        config=any(p.max_age is not None for p in applying) or "config" in rules_use,
        layers=any(p.forbidden_base_layers for p in applying) or "image" in rules_use,
        authorities=tuple(authorities),
    )
