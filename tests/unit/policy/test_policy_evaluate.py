# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from attestor.api.problems import status_of
from attestor.errors import InvalidInput, NotFound, PolicyDenied
from attestor.policy import (
    Decision,
    Policy,
    PolicySet,
    RegistryRule,
    evaluate,
    load_policies,
    require_admitted,
)

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Ref:
    """Shaped like attestor.registry.reference.ImageReference."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None


def _set(*rules: RegistryRule, policy_id: str = "p", **kw: object) -> PolicySet:
    return PolicySet(
        (Policy(id=policy_id, version="7", registries=rules, sha256="sha256:ab", **kw),)
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dev() -> PolicySet:
    return load_policies(REPO / "policies")


@pytest.mark.parametrize(
    "registry",
    [
        "127.0.0.1:5000",
        "127.0.0.1:42111",
        "127.0.0.1",
        "localhost:5000",
        "LOCALHOST:5000",
        "[::1]:5000",
    ],
)
def test_dev_admits_loopback(dev: PolicySet, registry: str) -> None:
    decision = evaluate(dev, Ref(registry, "some/deep/repo"))
    assert decision.allowed
    assert decision.policy_id == "dev"
    assert decision.policy_version == "1"
    assert decision.policy_sha256 is not None
    assert decision.policy_sha256.startswith("sha256:")
    assert "admits" in decision.reasons[0]


@pytest.mark.parametrize(
    "registry",
    [
        "127.0.0.2:5000",
        "localhost.example.com:5000",
        "127.0.0.1.nip.io:5000",
        "docker.io",
        "[::2]:5000",
        "127.0.0.1:5000/x",
        "127.0.0.1:abc",
        "127.0.0.1:\u00b2",
    ],
)
def test_dev_refuses_everything_else(dev: PolicySet, registry: str) -> None:
    decision = evaluate(dev, Ref(registry, "app"))
    assert not decision.allowed
    assert decision.policy_id is None
    assert decision.policy_version is None
    assert decision.reasons == (f"policy dev version 1: registry {registry} is not listed",)


def test_require_admitted_raises_with_reasons(dev: PolicySet) -> None:
    with pytest.raises(PolicyDenied) as info:
        require_admitted(dev, Ref("ghcr.io", "org/app"))
    assert status_of(info.value) == 403
    assert info.value.detail["image"] == "ghcr.io/org/app"
    assert info.value.detail["reasons"] == ["policy dev version 1: registry ghcr.io is not listed"]
    assert "ghcr.io/org/app" in info.value.message


def test_require_admitted_returns_decision(dev: PolicySet) -> None:
    decision = require_admitted(dev, Ref("localhost:5000", "app"))
    assert (decision.allowed, decision.policy_id, decision.policy_version) == (True, "dev", "1")
    assert decision.image == "localhost:5000/app"
    (result,) = decision.results
    assert [(r.rule, r.status, r.effect) for r in result.rules] == [("scope", "passed", "none")]


@pytest.mark.parametrize(
    ("pattern", "registry", "expected"),
    [
        ("registry.example.com", "registry.example.com", True),
        ("registry.example.com", "registry.example.com:443", False),
        ("registry.example.com:443", "registry.example.com", False),
        ("registry.example.com:5000", "registry.example.com:5000", True),
        ("registry.example.com:5000", "registry.example.com:5001", False),
        ("registry.example.com:*", "registry.example.com:5001", True),
        ("*.example.com", "eu.example.com", True),
        ("*.example.com", "EU.Example.COM", True),
        ("*.example.com", "a.eu.example.com", False),
        ("*.example.com", "example.com", False),
        ("*.example.com", "evilexample.com", False),
        ("*.example.com", "eu.example.com:5000", False),
        ("*.example.com:*", "eu.example.com:5000", True),
        ("[::1]:5000", "[::1]:5000", True),
        ("[::1]:5000", "[::1]", False),
    ],
)
def test_host_patterns(pattern: str, registry: str, expected: bool) -> None:
    rule = RegistryRule(host=pattern, require_signatures=False)
    assert rule.matches_host(registry) is expected
    assert evaluate(_set(rule), Ref(registry, "app")).allowed is expected


@pytest.mark.parametrize(
    ("glob", "repository", "expected"),
    [
        ("team/*", "team/app", True),
        ("team/*", "team/app/sub", False),
        ("team/**", "team/app/sub", True),
        ("team/**", "team", False),
        ("team/app-?", "team/app-1", True),
        ("team/app-?", "team/app-/", False),
        ("**", "a/b/c", True),
        ("team/app", "team/app", True),
        ("team/app", "team/app2", False),
        ("team.app", "teamxapp", False),
    ],
)
def test_repository_globs(glob: str, repository: str, expected: bool) -> None:
    rule = RegistryRule(host="r.example.com", repositories=(glob,), require_signatures=False)
    assert rule.matches_repository(repository) is expected


def test_listed_registry_unlisted_repository_reason() -> None:
    rule = RegistryRule(host="r.example.com", repositories=("team/*",), require_signatures=False)
    decision = evaluate(_set(rule), Ref("r.example.com", "other/app"))
    assert not decision.allowed
    assert decision.reasons == (
        "policy p version 7: registry r.example.com is listed but repository other/app is not",
    )


def test_first_matching_rule_decides_signatures_fail_closed() -> None:
    signed = RegistryRule(host="r.example.com", repositories=("prod/**",))
    unsigned = RegistryRule(host="r.example.com", require_signatures=False)
    decision = evaluate(_set(signed, unsigned), Ref("r.example.com", "prod/app"))
    assert not decision.allowed
    assert "requires signatures but the policy has no signatures section" in decision.reasons[0]
    assert evaluate(_set(signed, unsigned), Ref("r.example.com", "dev/app")).allowed


def test_unenforced_sections_refuse() -> None:
    rule = RegistryRule(host="r.example.com", require_signatures=False)
    ps = _set(rule, unenforced_sections=("builders",))
    decision = evaluate(ps, Ref("r.example.com", "app"))
    assert not decision.allowed
    assert "deprecated sections that are never enforced (builders)" in decision.reasons[0]


def test_every_applying_policy_must_pass_and_refusals_list_all() -> None:
    # Policies combine with AND: a loose policy cannot override a strict one
    # that also applies (it used to be "any admitting policy wins").
    strict = Policy(id="a-strict", version="1", registries=(RegistryRule(host="r.example.com"),))
    loose = Policy(
        id="b-loose",
        version="2",
        registries=(RegistryRule(host="r.example.com", require_signatures=False),),
    )
    ps = PolicySet((loose, strict))
    assert ps.ids == ("a-strict", "b-loose")
    decision = evaluate(ps, Ref("r.example.com", "app"))
    assert not decision.allowed
    assert decision.reasons == (
        "policy a-strict version 1: rule 0 (host r.example.com, repositories **) requires "
        "signatures but the policy has no signatures section naming whose (fail closed)",
    )
    assert [r.policy_id for r in decision.results] == ["a-strict", "b-loose"]
    assert [r.passed for r in decision.results] == [False, True]
    refused = evaluate(ps, Ref("other.example.com", "app"))
    assert len(refused.reasons) == 2
    only_loose = evaluate(ps, Ref("r.example.com", "app"), policy_id="b-loose")
    assert (only_loose.allowed, only_loose.policy_id, only_loose.policy_version) == (
        True,
        "b-loose",
        "2",
    )
    with pytest.raises(NotFound):
        evaluate(ps, Ref("r.example.com", "app"), policy_id="nope")


@pytest.mark.parametrize(
    "ref",
    [Ref("", "app"), Ref("r.example.com", ""), Ref(None, "app"), object()],  # type: ignore[arg-type]
)
def test_bad_reference_is_invalid_input(ref: object) -> None:
    ps = _set(RegistryRule(host="r.example.com", require_signatures=False))
    with pytest.raises(InvalidInput):
        evaluate(ps, ref)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["", "*", "a b", "x:99999999", "*.[::1]:5", "h\n"])
def test_rule_rejects_bad_host(host: str) -> None:
    with pytest.raises(InvalidInput):
        RegistryRule(host=host)


def test_decision_invariants() -> None:
    with pytest.raises(ValueError, match="reason"):
        Decision(allowed=False, policy_id=None, policy_version=None, reasons=())
    with pytest.raises(ValueError, match="policy id"):
        Decision(allowed=True, policy_id=None, policy_version=None, reasons=("x",))
