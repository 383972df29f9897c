# SPDX-License-Identifier: Apache-2.0
"""Admission policies: which images may be attested, and why (pure, no I/O).

Parse documents with :func:`parse_policy` (or a directory with
:func:`load_policies`). Before any network I/O, :func:`evaluate` /
:func:`require_admitted` check an image's name; with the image's verified
evidence (:class:`Evidence`), :func:`evaluate_image` /
:func:`require_image_admitted` check every rule. Both return a frozen
:class:`Decision` with one entry per rule (``Decision.to_dict()`` meets
``schemas/policy-decision.schema.json``).
"""

from attestor.policy.decision import Decision, PolicyResult, RuleResult, Voucher
from attestor.policy.engine import evaluate_image, require_image_admitted
from attestor.policy.evaluate import evaluate, require_admitted
from attestor.policy.evidence import (
    Evidence,
    EvidenceLimits,
    ImageEvidence,
    VerifiedAttestation,
    VerifiedSignature,
    VerifiedSigner,
)
from attestor.policy.loader import load_policies, parse_policy
from attestor.policy.model import (
    ImageRef,
    Policy,
    PolicySet,
    RegistryRule,
)
from attestor.policy.plan import EvidencePlan, evidence_plan
from attestor.policy.sections import (
    AttestationRequirement,
    Authority,
    CelRule,
    Conditions,
    SignatureRequirement,
)

__all__ = [
    "AttestationRequirement",
    "Authority",
    "CelRule",
    "Conditions",
    "Decision",
    "Evidence",
    "EvidenceLimits",
    "EvidencePlan",
    "ImageEvidence",
    "ImageRef",
    "Policy",
    "PolicyResult",
    "PolicySet",
    "RegistryRule",
    "RuleResult",
    "SignatureRequirement",
    "VerifiedAttestation",
    "VerifiedSignature",
    "VerifiedSigner",
    "Voucher",
    "evaluate",
    "evaluate_image",
    "evidence_plan",
    "load_policies",
    "parse_policy",
    "require_admitted",
    "require_image_admitted",
]
