# SPDX-License-Identifier: Apache-2.0
"""Decide whether a policy set admits an image (pure, no I/O).

Policies are allow-lists: an image is admitted when some policy admits it.
Within one policy the first rule whose host and repository match decides.
Everything not admitted is refused, with the reason of every policy that
looked at the image, so an operator sees why (STYLE.md rule 10).
"""

from __future__ import annotations

from attestor.errors import InvalidInput, PolicyDenied
from attestor.policy.model import Decision, ImageRef, Policy, PolicySet

__all__ = ["evaluate", "require_admitted"]


def _image_name(image: ImageRef) -> tuple[str, str]:
    registry = getattr(image, "registry", None)
    repository = getattr(image, "repository", None)
    if not isinstance(registry, str) or not registry:
        raise InvalidInput(f"image reference has no registry host: {registry!r:.80}")
    if not isinstance(repository, str) or not repository:
        raise InvalidInput(f"image reference has no repository: {repository!r:.80}")
    return registry, repository


def _evaluate_one(policy: Policy, registry: str, repository: str) -> tuple[bool, str]:
    name = f"{registry}/{repository}"
    head = f"policy {policy.id} version {policy.version}"
    host_matched = False
    for index, rule in enumerate(policy.registries):
        if not rule.matches_host(registry):
            continue
        host_matched = True
        if not rule.matches_repository(repository):
            continue
        where = f"rule {index} (host {rule.host}, repositories {', '.join(rule.repositories)})"
        # Fail closed on what this version can't check yet: silently skipping
        # a signature requirement would admit unsigned images.
        if policy.unenforced_sections:
            sections = ", ".join(policy.unenforced_sections)
            return False, (
                f"{head} matches {name} by {where} but uses sections not enforced yet "
                f"({sections}); refusing"
            )
        if rule.require_signatures:
            return False, (
                f"{head} matches {name} by {where} but requires signatures, which are "
                "not enforced yet; refusing"
            )
        return True, f"{head} admits {name} by {where}"
    if host_matched:
        return False, f"{head}: registry {registry} is listed but repository {repository} is not"
    return False, f"{head}: registry {registry} is not listed"


def evaluate(policy_set: PolicySet, image: ImageRef, *, policy_id: str | None = None) -> Decision:
    """Evaluate ``image`` against ``policy_set`` (or only ``policy_id`` in it).

    Args:
        policy_set: The policies in force.
        image: Anything with ``.registry`` (``host[:port]``) and ``.repository``.
        policy_id: Evaluate only this policy, e.g. when a request names one.

    Returns:
        A frozen decision. Refusals list the reason of every policy consulted.

    Raises:
        InvalidInput: if ``image`` lacks a registry or repository string.
        NotFound: if ``policy_id`` names no policy in the set.
    """
    registry, repository = _image_name(image)
    if not policy_set.policies:
        where = f" in {policy_set.source}" if policy_set.source else ""
        return Decision(
            allowed=False,
            policy_id=None,
            policy_version=None,
            reasons=(f"no policies are loaded{where}; every image is refused",),
        )
    policies = policy_set.policies if policy_id is None else (policy_set.get(policy_id),)
    refusals: list[str] = []
    for policy in policies:
        allowed, reason = _evaluate_one(policy, registry, repository)
        if allowed:
            return Decision(
                allowed=True,
                policy_id=policy.id,
                policy_version=policy.version,
                reasons=(reason,),
                policy_sha256=policy.sha256 or None,
            )
        refusals.append(reason)
    return Decision(allowed=False, policy_id=None, policy_version=None, reasons=tuple(refusals))


def require_admitted(
    policy_set: PolicySet, image: ImageRef, *, policy_id: str | None = None
) -> Decision:
    """Like :func:`evaluate`, but raise when the image is refused.

    Returns:
        The admitting decision.

    Raises:
        PolicyDenied: if no policy admits the image; ``detail["reasons"]``
            lists why and ``detail["image"]`` names it.
        InvalidInput: if ``image`` lacks a registry or repository string.
        NotFound: if ``policy_id`` names no policy in the set.
    """
    decision = evaluate(policy_set, image, policy_id=policy_id)
    if not decision.allowed:
        name = f"{image.registry}/{image.repository}"
        raise PolicyDenied(
            f"no policy admits {name}: {decision.reasons[0]}",
            detail={"reasons": list(decision.reasons), "image": name},
        )
    return decision
