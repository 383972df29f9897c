# SPDX-License-Identifier: Apache-2.0
"""Evaluate policies against an image's evidence: explainable decisions (pure).

How several policies combine (docs/policies.md has the long form):

1. A policy **applies** to an image when one of its scope rules (``scope``
   entries, or the legacy ``registries`` rules) matches the image's registry
   host and repository. Within a policy the first matching rule decides.
2. No applying policy: the image is refused, whatever the modes. Policies are
   an allow-list; an image nobody scoped is never attested.
3. Every applying ``enforce`` policy must pass all of its rules. One failed
   rule of one such policy refuses the image.
4. Failed rules of applying ``warn`` policies are recorded as warnings, those
   of ``audit`` policies as findings; neither refuses.
5. The decision lists every applying policy with one entry per rule, and
   names a primary policy for attestations: the first applying ``enforce``
   policy by id, else the first applying policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from attestor.errors import InvalidInput, PolicyDenied
from attestor.policy._checks import (
    Outcome,
    check_attestation,
    check_base_layers,
    check_max_age,
    check_rule,
    check_signatures,
)
from attestor.policy.decision import (
    Decision,
    PolicyResult,
    RuleResult,
    Status,
    Voucher,
    effect_of,
)
from attestor.policy.evidence import Evidence
from attestor.policy.model import Policy, PolicySet

__all__ = ["combine", "evaluate_image", "evaluate_policy", "require_image_admitted"]

# Stands in for "now" in a name-only check, which runs no time-based rule.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_Check = tuple[str, Callable[[], Outcome]]


def _not_listed(policy: Policy, registry: str, repository: str) -> str:
    head = f"policy {policy.id} version {policy.version}"
    if any(rule.matches_host(registry) for rule in policy.registries):
        return f"{head}: registry {registry} is listed but repository {repository} is not"
    return f"{head}: registry {registry} is not listed"


def _checks(policy: Policy, evidence: Evidence, now: datetime) -> list[_Check]:
    image = evidence.image
    checks: list[_Check] = []
    if policy.signatures is not None:
        checks.append(("signatures", lambda: check_signatures(policy, evidence)))
    for req in policy.attestations:
        checks.append((f"attestations/{req.name}", lambda r=req: check_attestation(r, evidence)))  # type: ignore[misc]
    if policy.max_age is not None:
        max_age = policy.max_age
        checks.append(("max_age", lambda: check_max_age(max_age, image, now)))
    if policy.forbidden_base_layers:
        layers = policy.forbidden_base_layers
        checks.append(("forbidden_base_layers", lambda: check_base_layers(layers, image)))
    variables = evidence.rule_input
    for rule in policy.rules:
        checks.append((f"rules/{rule.name}", lambda r=rule: check_rule(r, variables)))  # type: ignore[misc]
    return checks


def evaluate_policy(
    policy: Policy,
    evidence: Evidence,
    now: datetime | None,
    *,
    name_only: bool = False,
    evidence_follows: bool = False,
) -> PolicyResult | None:
    """One policy's per-rule result, or ``None`` when it does not apply.

    Args:
        policy: The policy.
        evidence: What was gathered.
        now: Evaluation time (aware); ``None`` only with ``name_only``.
        name_only: Only the registry and repository are known (the check
            before any network I/O); every evidence rule is then skipped
            (``evidence_follows``) or failed.
        evidence_follows: With ``name_only``: the caller promises to call
            :func:`evaluate_image` with full evidence before acting.
    """
    image = evidence.image
    match = policy.matching_rule(image.registry, image.repository)
    if match is None:
        return None
    index, scope_rule = match
    mode = policy.mode

    def entry(
        rule: str, passed: bool | None, reason: str, names: tuple[Voucher, ...] = ()
    ) -> RuleResult:
        status: Status = "skipped" if passed is None else ("passed" if passed else "failed")
        return RuleResult(rule, status, reason, effect_of(mode, status), names if passed else ())

    where = (
        f"rule {index} (host {scope_rule.host}, repositories {', '.join(scope_rule.repositories)})"
    )
    results = [entry("scope", True, f"{image.registry}/{image.repository} is in scope by {where}")]
    if policy.unenforced_sections:
        sections = ", ".join(policy.unenforced_sections)
        results.append(
            entry(
                "legacy_sections",
                False,
                f"uses deprecated sections that are never enforced ({sections}); "
                "use signatures and attestations instead",
            )
        )
    if scope_rule.require_signatures and policy.signatures is None:
        results.append(
            entry(
                "require_signatures",
                False,
                f"{where} requires signatures but the policy has no signatures section "
                "naming whose (fail closed)",
            )
        )
    for rule_id, check in _checks(policy, evidence, now or _EPOCH):
        if name_only and evidence_follows:
            results.append(entry(rule_id, None, "checked once the image is fetched"))
        elif name_only:
            results.append(
                entry(
                    rule_id,
                    False,
                    "needs the image's evidence, which this name-only check does not have "
                    "(fail closed)",
                )
            )
        else:
            outcome = check()
            results.append(entry(rule_id, outcome.passed, outcome.reason, outcome.authorities))
    return PolicyResult(
        policy_id=policy.id,
        policy_version=policy.version,
        mode=mode,
        rules=tuple(results),
        policy_sha256=policy.sha256 or None,
    )


def combine(
    policies: Sequence[Policy],
    results: Sequence[PolicyResult],
    evidence: Evidence,
    *,
    source: str = "",
    evaluated_at: str = "",
) -> Decision:
    """Combine per-policy results into one decision (see the module docstring)."""
    image = evidence.image
    name = f"{image.registry}/{image.repository}"
    if not policies:
        where = f" in {source}" if source else ""
        reason = f"no policies are loaded{where}; every image is refused"
        return Decision(False, None, None, (reason,), image=image.name, evaluated_at=evaluated_at)
    if not results:
        reasons = tuple(_not_listed(p, image.registry, image.repository) for p in policies)
        return Decision(False, None, None, reasons, image=image.name, evaluated_at=evaluated_at)
    heads = {p.id: f"policy {p.id} version {p.version}" for p in policies}
    refusals = tuple(
        f"{heads[r.policy_id]}: {rule.reason}"
        for r in results
        for rule in r.rules
        if rule.effect == "refuse"
    )
    if refusals:
        return Decision(
            False,
            None,
            None,
            refusals,
            image=image.name,
            results=tuple(results),
            evaluated_at=evaluated_at,
        )
    enforcing = [r for r in results if r.mode == "enforce"]
    primary = (enforcing or list(results))[0]
    in_scope = f"{name} is in scope by "
    admits = tuple(
        f"{heads[r.policy_id]} admits {name} by {r.rules[0].reason.removeprefix(in_scope)}"
        + ("" if r.passed else f" ({r.mode} mode: {len(r.failed_rules)} rule(s) failed)")
        for r in results
    )
    warnings = tuple(
        f"{heads[r.policy_id]} ({r.mode}): {rule.reason}"
        for r in results
        for rule in r.failed_rules
    )
    return Decision(
        True,
        primary.policy_id,
        primary.policy_version,
        admits + warnings,
        policy_sha256=primary.policy_sha256,
        image=image.name,
        results=tuple(results),
        evaluated_at=evaluated_at,
    )


def _select(policy_set: PolicySet, policy_id: str | None) -> tuple[Policy, ...]:
    return policy_set.policies if policy_id is None else (policy_set.get(policy_id),)


def evaluate_image(
    policy_set: PolicySet, evidence: Evidence, now: datetime, *, policy_id: str | None = None
) -> Decision:
    """Evaluate ``evidence`` against every applying policy of ``policy_set``.

    Args:
        policy_set: The policies in force.
        evidence: The image and its verified signatures and attestations.
        now: The evaluation time, timezone-aware (for ``max_age``).
        policy_id: Evaluate only this policy.

    Returns:
        The decision, one entry per rule of every applying policy.

    Raises:
        InvalidInput: ``now`` is naive.
        NotFound: ``policy_id`` names no policy in the set.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("evaluation time must be timezone-aware")
    policies = _select(policy_set, policy_id)
    results = [r for p in policies if (r := evaluate_policy(p, evidence, now)) is not None]
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    return combine(policies, results, evidence, source=policy_set.source, evaluated_at=stamp)


def require_image_admitted(
    policy_set: PolicySet, evidence: Evidence, now: datetime, *, policy_id: str | None = None
) -> Decision:
    """Like :func:`evaluate_image`, but raise when the image is refused.

    Raises:
        PolicyDenied: refused; ``detail["decision"]`` is ``Decision.to_dict()``,
            ``detail["reasons"]`` lists why and ``detail["image"]`` names it.
        InvalidInput: ``now`` is naive.
        NotFound: ``policy_id`` names no policy in the set.
    """
    decision = evaluate_image(policy_set, evidence, now, policy_id=policy_id)
    if not decision.allowed:
        raise PolicyDenied(
            f"no policy admits {decision.image}: {decision.reasons[0]}",
            detail={
                "reasons": list(decision.reasons),
                "image": decision.image,
                "decision": decision.to_dict(),
            },
        )
    return decision
