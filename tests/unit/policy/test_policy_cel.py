# SPDX-License-Identifier: Apache-2.0
"""CEL rules: compiled at parse time, fail closed, bounded, thread-safe."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from attestor.errors import InvalidInput
from attestor.policy import evaluate_image
from attestor.policy._cel import MAX_MACRO_STEPS, CelError, compile_cel
from tests.unit.policy._build import (
    DIGEST,
    NOW,
    OTHER_DIGEST,
    config,
    evidence,
    key_signer,
    one_set,
    policy,
    signature,
)


def _decide(expression: str, message: str = "", **kw: Any) -> tuple[bool, str]:
    rule: dict[str, Any] = {"name": "r", "expression": expression}
    if message:
        rule["message"] = message
    decision = evaluate_image(one_set(policy(rules=[rule])), evidence(**kw), NOW)
    (result,) = decision.results
    entry = next(r for r in result.rules if r.rule == "rules/r")
    assert entry.status == ("passed" if decision.allowed else "failed")
    return decision.allowed, entry.reason


def test_true_passes_and_false_refuses_with_message() -> None:
    assert _decide('config.config.User == "app"') == (True, "rule r holds")
    assert _decide('config.config.User == "root"') == (
        False,
        'rule r is false: config.config.User == "root"',
    )
    assert _decide('config.config.User == "root"', "must run as root") == (
        False,
        "must run as root",
    )


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("config.config.Missing == 1", "no such member in mapping: 'Missing'"),
        ("1 / (size(image.layers) - 2) == 0", "divide by zero"),
        ("size(image.layers)", "returned IntType, not a boolean"),
    ],
)
def test_evaluation_error_fails_closed(expression: str, fragment: str) -> None:
    allowed, reason = _decide(expression)
    assert not allowed
    assert reason.startswith("rule r could not be evaluated (fail closed): ")
    assert fragment in reason


def test_rule_reads_image_config_signatures_attestations() -> None:
    sig = signature(key_signer("ab" * 32))
    other = signature(key_signer("cd" * 32), digest=OTHER_DIGEST)
    expression = (
        f'image.manifest_digest == "{DIGEST}" && size(image.layers) == 2 '
        '&& config.architecture == "amd64" && size(attestations) == 0 '
        # Only signatures naming this image's digest are visible to rules.
        '&& size(signatures) == 1 && signatures[0].signer.keyid == "' + "ab" * 32 + '"'
    )
    assert _decide(expression, signatures=(sig, other))[0]


def test_rule_over_evidence_not_gathered_fails_closed() -> None:
    allowed, reason = _decide("size(signatures) >= 0", signatures=None)
    assert (allowed, reason) == (
        False,
        "signatures: not gathered for this image (fail closed)",
    )
    allowed, reason = _decide("config == null || true", with_config=False)
    assert (allowed, reason) == (
        False,
        "config: not gathered for this image (fail closed)",
    )


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("1 +", "does not compile"),
        ("secrets.key == 1", "unknown variable 'secrets'"),
        ("x" * 2049, "is longer than 2048 characters"),
        (
            "image.layers.all(a, image.layers.all(b, image.layers.all(c, true)))",
            "macros nested 3 deep, limit 2",
        ),
        ("image.layers.map(l, string(config)).size() > 0", "not allowed inside macros"),
        ("(" * 400 + "true" + ")" * 400, ""),
    ],
)
def test_bad_rules_rejected_at_parse_time(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        policy(rules=[{"name": "r", "expression": expression}])
    errors = info.value.detail["errors"]
    assert isinstance(errors, list)
    assert errors[0]["pointer"] == "/rules/0/expression"
    assert fragment in errors[0]["message"]


def test_runaway_evaluation_stops_at_budget() -> None:
    # A nested macro over n items takes n + n*n steps.
    big = next(n for n in range(1, 1000) if n + n * n > MAX_MACRO_STEPS)
    nested = "config.config.Env.all(a, config.config.Env.all(b, a != b || a == b))"
    allowed, reason = _decide(nested, cfg=config(Env=[f"K{i}=v" for i in range(big)]))
    assert not allowed
    assert f"stopped: evaluation budget spent ({MAX_MACRO_STEPS} macro steps" in reason
    # One item fewer stays within the budget and evaluates.
    small = config(Env=[f"K{i}=v" for i in range(big - 1)])
    assert _decide(nested, cfg=small)[0]


def test_matches_scans_at_most_the_character_budget() -> None:
    # 20 strings of 4 KiB rescanned 20 times by a nested macro: 420 steps,
    # well under the step budget, but 1.6 MiB scanned, over the 1 MiB cap.
    env = ["a" * 4096 for _ in range(20)]
    nested = 'config.config.Env.all(a, config.config.Env.all(b, b.matches("^a+$")))'
    allowed, reason = _decide(nested, cfg=config(Env=env))
    assert not allowed
    assert "evaluation budget spent" in reason
    # Scanning each string once stays within it.
    assert _decide('config.config.Env.all(b, b.matches("^a+$"))', cfg=config(Env=env))[0]


def test_compile_leaves_recursion_limit_alone() -> None:
    before = sys.getrecursionlimit()
    compile_cel("true")
    assert sys.getrecursionlimit() == before


def test_concurrent_evaluations_do_not_mix_results() -> None:
    # celpy's own CompiledRunner.evaluate shares module globals between calls.
    program = compile_cel("image.n % 2 == 0")
    errors: list[str] = []

    def run(start: int) -> None:
        for n in range(start, start + 1500):
            if program.evaluate({"image": {"n": n}}) is not (n % 2 == 0):
                errors.append(f"wrong result for {n}")

    threads = [threading.Thread(target=run, args=(i * 10_000,)) for i in range(4)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []


def test_cel_error_type() -> None:
    with pytest.raises(CelError):
        compile_cel("")


def test_concatenation_is_capped() -> None:
    # 30 x 30 pairs, each building strings of 8, 12 and 16 KiB: 32 MiB > 4 Mi.
    env = ["a" * 4096 for _ in range(30)]
    built = "config.config.Env.all(a, config.config.Env.all(b, size(a + b + a + b) > 0))"
    allowed, reason = _decide(built, cfg=config(Env=env))
    assert not allowed
    assert "items built by +" in reason
    assert _decide("config.config.Env.all(a, size(a + a) > 0)", cfg=config(Env=env))[0]
    assert _decide('[1] + [2] == [1, 2] && "a" + "b" == "ab" && 1 + 2 == 3 && 7 % 4 == 3')[0]
