# SPDX-License-Identifier: Apache-2.0
"""How applying policies combine, modes, and the decision's JSON form."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import yaml

from attestor import schemas
from attestor.errors import InvalidInput, PolicyDenied
from attestor.policy import (
    Decision,
    PolicySet,
    evaluate,
    evaluate_image,
    parse_policy,
    require_admitted,
)
from tests.unit.policy._build import (
    NOW,
    REGISTRY,
    document,
    evidence,
    key_authority,
    key_signer,
    one_set,
    policy,
    signature,
)

KEY = "ab" * 32
SIGNED = {"authorities": [key_authority("k", KEY)]}


def _p(pid: str, mode: str = "enforce", **sections: Any) -> Any:
    return policy(id=pid, mode=mode, **sections)


def _valid(decision: Decision) -> dict[str, Any]:
    doc = decision.to_dict()
    schemas.validate(doc, "policy-decision")
    # Deterministic: same bytes every time, and a JSON round trip.
    assert decision.to_json() == decision.to_json()
    assert json.loads(decision.to_json()) == doc
    return doc


def test_no_applying_policy_refuses_whatever_the_modes() -> None:
    ps = one_set(_p("audit-only", "audit"))
    ev = evidence()
    outside = type(ev)(image=type(ev.image)(registry="other.example.com", repository="x"))
    decision = evaluate_image(ps, outside, NOW)
    assert not decision.allowed
    assert decision.reasons == (
        "policy audit-only version 1: registry other.example.com is not listed",
    )
    assert decision.results == ()
    _valid(decision)


def test_every_applying_enforce_policy_must_pass() -> None:
    open_ = _p("a-open")
    signed = _p("b-signed", signatures=SIGNED)
    ps = one_set(open_, signed)
    refused = evaluate_image(ps, evidence(), NOW)
    assert not refused.allowed
    assert [r.passed for r in refused.results] == [True, False]
    assert refused.reasons[0].startswith(
        "policy b-signed version 1: signature threshold 1 of 1 not met"
    )
    ok = evaluate_image(ps, evidence(signatures=(signature(key_signer(KEY)),)), NOW)
    assert ok.allowed
    assert (ok.policy_id, ok.policy_version) == ("a-open", "1")
    assert ok.reasons == (
        f"policy a-open version 1 admits {REGISTRY}/team/app by rule 0 "
        f"(host {REGISTRY}, repositories team/*)",
        f"policy b-signed version 1 admits {REGISTRY}/team/app by rule 0 "
        f"(host {REGISTRY}, repositories team/*)",
    )
    doc = _valid(ok)
    assert doc["policy"]["id"] == "a-open"
    assert doc["policy"]["sha256"].startswith("sha256:")
    assert doc["evaluated_at"] == "2026-12-08T12:00:00Z"


@pytest.mark.parametrize(
    ("mode", "effect", "warnings", "findings"),
    [("enforce", "refuse", 0, 0), ("warn", "warn", 1, 0), ("audit", "finding", 1, 1)],
)
def test_modes(mode: str, effect: str, warnings: int, findings: int) -> None:
    decision = evaluate_image(one_set(_p("p", mode, signatures=SIGNED)), evidence(), NOW)
    assert decision.allowed is (mode != "enforce")
    (result,) = decision.results
    assert result.mode == mode
    assert not result.passed
    assert [r.effect for r in result.rules] == ["none", effect]
    assert len(decision.warnings) == warnings
    assert len(decision.findings) == findings
    if mode != "enforce":
        assert decision.policy_id == "p"
        assert decision.reasons[0].endswith(f"({mode} mode: 1 rule(s) failed)")
        assert decision.reasons[1].startswith(f"policy p version 1 ({mode}): signature threshold")
    _valid(decision)


def test_warn_and_audit_policies_never_override_an_enforce_refusal() -> None:
    ps = one_set(_p("a-audit", "audit"), _p("b-enforce", signatures=SIGNED), _p("c-warn", "warn"))
    decision = evaluate_image(ps, evidence(), NOW)
    assert not decision.allowed
    assert len(decision.results) == 3


def test_primary_policy_prefers_enforce() -> None:
    ps = one_set(_p("a-audit", "audit"), _p("b-enforce"))
    decision = evaluate_image(ps, evidence(), NOW)
    assert (decision.allowed, decision.policy_id) == (True, "b-enforce")
    audit_only = evaluate_image(one_set(_p("a-audit", "audit")), evidence(), NOW)
    assert (audit_only.allowed, audit_only.policy_id) == (True, "a-audit")


def test_policy_id_selects_one() -> None:
    ps = one_set(_p("a-open"), _p("b-signed", signatures=SIGNED))
    assert evaluate_image(ps, evidence(), NOW, policy_id="a-open").allowed
    assert not evaluate_image(ps, evidence(), NOW, policy_id="b-signed").allowed


def test_empty_set_and_naive_time() -> None:
    empty = evaluate_image(PolicySet((), source="/etc/p"), evidence(), NOW)
    assert empty.reasons == ("no policies are loaded in /etc/p; every image is refused",)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        evaluate_image(one_set(_p("p")), evidence(), datetime(2026, 1, 1))  # noqa: DTZ001


def test_name_only_check_fails_or_skips_evidence_rules() -> None:
    class Ref:
        registry = REGISTRY
        repository = "team/app"

    ps = one_set(_p("p", signatures=SIGNED, max_age="1d"))
    refused = evaluate(ps, Ref())
    assert not refused.allowed
    assert [(r.rule, r.status) for r in refused.results[0].rules] == [
        ("scope", "passed"),
        ("signatures", "failed"),
        ("max_age", "failed"),
    ]
    assert "needs the image's evidence" in refused.reasons[0]
    with pytest.raises(PolicyDenied) as info:
        require_admitted(ps, Ref())
    assert info.value.detail["decision"] == refused.to_dict()
    follows = require_admitted(ps, Ref(), evidence_follows=True)
    assert follows.allowed
    assert [(r.rule, r.status) for r in follows.results[0].rules] == [
        ("scope", "passed"),
        ("signatures", "skipped"),
        ("max_age", "skipped"),
    ]
    _valid(follows)


def test_legacy_registries_rule_requiring_signatures_is_met_by_a_signatures_section() -> None:
    legacy = document(signatures=SIGNED)
    del legacy["scope"]
    # require_signatures defaults to true in the legacy form.
    legacy["registries"] = [{"host": REGISTRY, "repositories": ["team/*"]}]
    p = parse_policy(yaml.safe_dump(legacy).encode())
    ev = evidence(signatures=(signature(key_signer(KEY)),))
    assert evaluate_image(one_set(p), ev, NOW).allowed
    del legacy["signatures"]
    without = parse_policy(yaml.safe_dump(legacy).encode())
    decision = evaluate_image(one_set(without), evidence(), NOW)
    assert not decision.allowed
    assert decision.results[0].rules[1].rule == "require_signatures"


def test_reasons_are_storable_text() -> None:
    from attestor.policy.decision import MAX_REASON_CHARS, RuleResult

    long = RuleResult("scope", "failed", "x" * (MAX_REASON_CHARS + 50) + "\x00\ud800")
    assert len(long.reason) == MAX_REASON_CHARS + 1
    odd = RuleResult("scope", "failed", "nul \x00 and \udfff")
    assert odd.reason == "nul \\x00 and \\udfff"
    odd.reason.encode("utf-8")
