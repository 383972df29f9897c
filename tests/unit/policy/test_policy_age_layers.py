# SPDX-License-Identifier: Apache-2.0
"""max_age (from the config's created) and forbidden_base_layers."""

from __future__ import annotations

from typing import Any

import pytest

from attestor.policy import RuleResult, evaluate_image
from tests.unit.policy._build import (
    DIFF_IDS,
    LAYERS,
    NOW,
    config,
    evidence,
    one_set,
    policy,
)


def _rule(rule_id: str, **kw: Any) -> tuple[bool, RuleResult]:
    sections = kw.pop("sections")
    decision = evaluate_image(one_set(policy(**sections)), evidence(**kw), NOW)
    (result,) = decision.results
    return decision.allowed, next(r for r in result.rules if r.rule == rule_id)


@pytest.mark.parametrize(
    ("created", "allowed", "reason"),
    [
        ("2026-12-01T00:00:00Z", True, "image is 7.5 days old, within 30.0 days"),
        ("2026-11-08T12:00:00Z", True, "image is 30.0 days old, within 30.0 days"),
        (
            "2026-11-08T11:59:59Z",
            False,
            "image is 30.0 days old (created 2026-11-08T11:59:59Z), max_age 30.0 days",
        ),
        (
            "2025-01-01T00:00:00+02:00",
            False,
            "image is 706.6 days old (created 2025-01-01T00:00:00+02:00), max_age 30.0 days",
        ),
        # Reproducible builds set created to the epoch: such images are "old".
        ("1970-01-01T00:00:00Z", False, None),
        ("2026-12-08T12:04:00Z", True, "image is 0h00m old, within 30.0 days"),
        (
            "2099-01-01T00:00:00Z",
            False,
            "the config's created 2099-01-01T00:00:00Z is in the future",
        ),
        (
            "2026-12-01T00:00:00",
            False,
            "the config's created '2026-12-01T00:00:00' is not an RFC 3339 time",
        ),
        ("yesterday", False, "the config's created 'yesterday' is not an RFC 3339 time"),
        (1733650000, False, "the config's created 1733650000 is not an RFC 3339 time"),
    ],
)
def test_max_age(created: object, allowed: bool, reason: str | None) -> None:
    ok, rule = _rule("max_age", sections={"max_age": "30d"}, cfg=config(created=created))  # type: ignore[arg-type]
    assert ok is allowed
    if reason is not None:
        assert rule.reason == reason


def test_max_age_without_created_or_config_fails_closed() -> None:
    cfg = config()
    del cfg["created"]
    ok, rule = _rule("max_age", sections={"max_age": "1w"}, cfg=cfg)
    assert not ok and "is not an RFC 3339 time" in rule.reason
    ok, rule = _rule("max_age", sections={"max_age": "1w"}, with_config=False)
    assert not ok
    assert rule.reason == "config: not gathered for this image (fail closed)"


@pytest.mark.parametrize(
    ("forbidden", "allowed", "fragment"),
    [
        ([LAYERS[1]], False, "layer 1 (sha256:222222222222…) matches forbidden base layer"),
        (["sha256:" + "2" * 12], False, "layer 1 (sha256:222222222222…)"),
        (["sha256:" + "3" * 12], False, "diffID 0 (sha256:333333333333…)"),
        ([DIFF_IDS[1]], False, "diffID 1"),
        (["sha256:" + "5" * 64, "sha256:" + "1" * 11 + "0"], True, "none of 2 layers"),
    ],
)
def test_forbidden_base_layers(forbidden: list[str], allowed: bool, fragment: str) -> None:
    ok, rule = _rule("forbidden_base_layers", sections={"forbidden_base_layers": forbidden})
    assert ok is allowed
    assert fragment in rule.reason


def test_forbidden_base_layers_without_layers_fail_closed() -> None:
    sections = {"forbidden_base_layers": ["sha256:" + "9" * 12]}
    for missing in ({"layers": None}, {"diff_ids": None}):
        ok, rule = _rule("forbidden_base_layers", sections=sections, **missing)
        assert not ok
        assert "not gathered for this image (fail closed)" in rule.reason
