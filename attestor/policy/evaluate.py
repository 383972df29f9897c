# SPDX-License-Identifier: Apache-2.0
"""The name-only check: may this registry and repository be fetched? (pure, no I/O).

Issuance calls :func:`require_admitted` before any network I/O, so a registry
no policy names is never contacted. Only the image's name is known then, so
every rule that needs the fetched image (signatures, attestations, age, base
layers, CEL) is either failed (the default: a caller that never checks the
evidence must not admit on the name alone) or, with ``evidence_follows=True``,
skipped because the caller promises to call ``evaluate_image`` with the
gathered evidence before issuing. Policies combine as in
``attestor.policy.engine``.
"""

from __future__ import annotations

from attestor.errors import InvalidInput, PolicyDenied
from attestor.policy.decision import Decision
from attestor.policy.engine import combine, evaluate_policy
from attestor.policy.evidence import Evidence, ImageEvidence
from attestor.policy.model import ImageRef, PolicySet

__all__ = ["evaluate", "require_admitted"]


def _image_name(image: ImageRef) -> tuple[str, str]:
    registry = getattr(image, "registry", None)
    repository = getattr(image, "repository", None)
    if not isinstance(registry, str) or not registry:
        raise InvalidInput(f"image reference has no registry host: {registry!r:.80}")
    if not isinstance(repository, str) or not repository:
        raise InvalidInput(f"image reference has no repository: {repository!r:.80}")
    return registry, repository


def evaluate(
    policy_set: PolicySet,
    image: ImageRef,
    *,
    policy_id: str | None = None,
    evidence_follows: bool = False,
) -> Decision:
    """Evaluate ``image``'s name against ``policy_set`` (or only ``policy_id`` in it).

    Args:
        policy_set: The policies in force.
        image: Anything with ``.registry`` (``host[:port]``) and ``.repository``.
        policy_id: Evaluate only this policy, e.g. when a request names one.
        evidence_follows: Skip, rather than fail, the rules that need the
            fetched image; only for a caller that then calls
            ``evaluate_image`` and obeys it.

    Returns:
        A frozen decision. Refusals list the reason of every policy consulted.

    Raises:
        InvalidInput: if ``image`` lacks a registry or repository string.
        NotFound: if ``policy_id`` names no policy in the set.
    """
    registry, repository = _image_name(image)
    evidence = Evidence(ImageEvidence(registry=registry, repository=repository))
    policies = policy_set.policies if policy_id is None else (policy_set.get(policy_id),)
    results = [
        r
        for p in policies
        if (
            r := evaluate_policy(
                p, evidence, None, name_only=True, evidence_follows=evidence_follows
            )
        )
        is not None
    ]
    return combine(policies, results, evidence, source=policy_set.source)


def require_admitted(
    policy_set: PolicySet,
    image: ImageRef,
    *,
    policy_id: str | None = None,
    evidence_follows: bool = False,
) -> Decision:
    """Like :func:`evaluate`, but raise when the image is refused.

    Returns:
        The admitting decision.

    Raises:
        PolicyDenied: if the image is refused; ``detail["reasons"]`` lists
            why, ``detail["image"]`` names it and ``detail["decision"]`` is
            the decision's ``to_dict()``.
        InvalidInput: if ``image`` lacks a registry or repository string.
        NotFound: if ``policy_id`` names no policy in the set.
    """
    decision = evaluate(policy_set, image, policy_id=policy_id, evidence_follows=evidence_follows)
    if not decision.allowed:
        name = f"{image.registry}/{image.repository}"
        raise PolicyDenied(
            f"no policy admits {name}: {decision.reasons[0]}",
            detail={
                "reasons": list(decision.reasons),
                "image": name,
                "decision": decision.to_dict(),
            },
        )
    return decision
