# SPDX-License-Identifier: Apache-2.0
"""Explainable decisions: one entry per rule, serialized deterministically (pure).

``Decision.to_dict()`` meets ``schemas/policy-decision.schema.json``; it is
stored with attestations and refusals and returned by the API, so its shape
is a compatibility promise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "EFFECTS",
    "MODES",
    "STATUSES",
    "Decision",
    "Effect",
    "Mode",
    "PolicyResult",
    "RuleResult",
    "Status",
    "Voucher",
    "effect_of",
]

Mode = Literal["enforce", "warn", "audit"]
Status = Literal["passed", "failed", "skipped"]
#: What a rule's outcome does: refuse the image, warn, raise a finding, or nothing.
Effect = Literal["refuse", "warn", "finding", "none"]
MODES: tuple[Mode, ...] = ("enforce", "warn", "audit")
STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped")
EFFECTS: tuple[Effect, ...] = ("refuse", "warn", "finding", "none")
_FAILED_EFFECT: dict[str, Effect] = {"enforce": "refuse", "warn": "warn", "audit": "finding"}

#: Version of the ``to_dict`` shape.
DECISION_FORMAT = "attestor.dev/policy-decision/v1"


#: A reason longer than this is cut; reasons quote evidence (references,
#: subjects, predicate values) whose size the engine does not choose.
MAX_REASON_CHARS = 2000


def clean_text(text: str) -> str:
    """``text`` as storable UTF-8: lone surrogates and NUL escaped, length capped.

    Reasons quote attacker-influenced evidence; a lone surrogate would make
    ``to_json`` fail and PostgreSQL refuses NUL in text.
    """
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "…"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def effect_of(mode: Mode, status: Status) -> Effect:
    """The effect of a rule with ``status`` in a policy of ``mode``."""
    return _FAILED_EFFECT[mode] if status == "failed" else "none"


@dataclass(frozen=True)
class Voucher:
    """An authority that satisfied a rule, and the verified signer that matched it.

    Attributes:
        authority: The authority's name in the policy.
        keyid: The signer's keyid (key authorities).
        signer_uri: The signer URI the key came from, if any.
        issuer: The keyless certificate's OIDC issuer.
        subject: The keyless certificate's subject (the actual one, also
            when the authority gave a pattern).
    """

    authority: str
    keyid: str | None = None
    signer_uri: str | None = None
    issuer: str | None = None
    subject: str | None = None

    def to_dict(self) -> dict[str, str]:
        """JSON form: ``authority`` and the signer fields that are set."""
        fields = {
            "authority": self.authority,
            "keyid": self.keyid,
            "signer_uri": self.signer_uri,
            "issuer": self.issuer,
            "subject": self.subject,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome.

    Attributes:
        rule: Stable rule id within its policy: ``scope``, ``signatures``,
            ``attestations/<name>``, ``max_age``, ``forbidden_base_layers``,
            ``rules/<name>``, ``legacy_sections``, ``require_signatures``.
        status: passed, failed or skipped.
        reason: For a person: what was required and what was found.
        effect: What the outcome does given the policy's mode.
        authorities: The authorities that satisfied it, each with the
            signer that matched (sorted by authority name; passed rules only).
    """

    rule: str
    status: Status
    reason: str
    effect: Effect = "none"
    authorities: tuple[Voucher, ...] = ()

    def __post_init__(self) -> None:
        """Make the reason storable (see :func:`clean_text`)."""
        object.__setattr__(self, "reason", clean_text(self.reason))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``schemas/policy-decision.schema.json``)."""
        out: dict[str, Any] = {
            "rule": self.rule,
            "status": self.status,
            "reason": self.reason,
            "effect": self.effect,
        }
        if self.authorities:
            out["authorities"] = [a.to_dict() for a in self.authorities]
        return out


@dataclass(frozen=True)
class PolicyResult:
    """One applying policy's outcome: passed when no rule failed."""

    policy_id: str
    policy_version: str
    mode: Mode
    rules: tuple[RuleResult, ...]
    policy_sha256: str | None = None

    @property
    def passed(self) -> bool:
        """Whether no rule failed."""
        return all(r.status != "failed" for r in self.rules)

    @property
    def failed_rules(self) -> tuple[RuleResult, ...]:
        """The rules that failed, in order."""
        return tuple(r for r in self.rules if r.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``schemas/policy-decision.schema.json``)."""
        return {
            "id": self.policy_id,
            "version": self.policy_version,
            "sha256": self.policy_sha256,
            "mode": self.mode,
            "passed": self.passed,
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating an image against a policy set.

    Attributes:
        allowed: Whether the image is admitted.
        policy_id: The primary admitting policy, recorded in attestations:
            the first applying ``enforce`` policy by id, else the first
            applying one (None when refused).
        policy_version: Its version (None when refused).
        reasons: Why, for humans and audit logs; never empty.
        policy_sha256: sha256 of the primary policy's document (None when refused).
        image: ``registry/repository[@digest]`` evaluated ("" for legacy callers).
        results: Every applying policy's per-rule outcome, by policy id.
        evaluated_at: RFC 3339 UTC time of the evaluation ("" when no time was given).
    """

    allowed: bool
    policy_id: str | None
    policy_version: str | None
    reasons: tuple[str, ...]
    policy_sha256: str | None = None
    image: str = ""
    results: tuple[PolicyResult, ...] = ()
    evaluated_at: str = ""

    def __post_init__(self) -> None:
        """Check invariants.

        Raises:
            ValueError: if a decision has no reason, or an admission names no policy.
        """
        object.__setattr__(self, "reasons", tuple(clean_text(r) for r in self.reasons))
        object.__setattr__(self, "image", clean_text(self.image))
        # ValueError, not an attestor error: only our own code builds Decisions.
        if not self.reasons:
            raise ValueError("a decision must carry at least one reason")
        if self.allowed and (self.policy_id is None or self.policy_version is None):
            raise ValueError("an admission must name its policy id and version")

    @property
    def rules(self) -> tuple[tuple[str, RuleResult], ...]:
        """Every rule outcome as ``(policy_id, result)``, in order."""
        return tuple((p.policy_id, r) for p in self.results for r in p.rules)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Reasons of failed rules of ``warn`` and ``audit`` policies (recorded, not refusing)."""
        return tuple(
            f"policy {p}: {r.reason}" for p, r in self.rules if r.effect in ("warn", "finding")
        )

    @property
    def findings(self) -> tuple[tuple[str, RuleResult], ...]:
        """Failed rules of ``audit`` policies: each raises a finding."""
        return tuple((p, r) for p, r in self.rules if r.effect == "finding")

    @property
    def satisfied_authorities(self) -> tuple[dict[str, str], ...]:
        """Who vouched for the image: every authority of a passed rule, with its signer.

        Each entry is ``Voucher.to_dict()`` plus ``policy`` and ``rule``, in
        policy, rule and authority order: what a signed predicate lists.
        """
        return tuple(
            {"policy": p, "rule": r.rule, **a.to_dict()}
            for p, r in self.rules
            if r.status == "passed"
            for a in r.authorities
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``schemas/policy-decision.schema.json``), deterministic."""
        primary = None
        if self.policy_id is not None:
            primary = {
                "id": self.policy_id,
                "version": self.policy_version,
                "sha256": self.policy_sha256,
            }
        return {
            "format": DECISION_FORMAT,
            "allowed": self.allowed,
            "image": self.image,
            "evaluated_at": self.evaluated_at,
            "policy": primary,
            "reasons": list(self.reasons),
            "policies": [p.to_dict() for p in self.results],
        }

    def to_json(self) -> bytes:
        """Canonical JSON bytes of ``to_dict()`` (sorted keys, no spaces, UTF-8)."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
