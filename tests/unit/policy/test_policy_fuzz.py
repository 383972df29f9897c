# SPDX-License-Identifier: Apache-2.0
"""The parser must end in InvalidInput or a Policy on any input, never crash."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput
from attestor.policy import Policy, parse_policy

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "id",
        "version",
        "registries",
        "description",
        "signing_keys",
        "builders",
        "scope",
        "mode",
        "signatures",
        "attestations",
        "max_age",
        "forbidden_base_layers",
        "rules",
        "x",
    ]
)
_rule = st.fixed_dictionaries(
    {"host": st.one_of(st.text(max_size=20), st.sampled_from(["localhost:*", "*.a.b", "[::1]:1"]))},
    optional={
        "repositories": st.lists(st.text(max_size=10), max_size=3) | _values,
        "require_signatures": _values,
    },
)
_near_valid = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["attestor.dev/v1alpha1"]) | _values,
        "kind": st.just("Policy") | _values,
        "id": st.text(max_size=12) | _values,
        "version": st.text(max_size=12) | _values,
        "registries": st.lists(_rule, max_size=3) | _values,
    },
    optional={"signing_keys": _values, "builders": _values},
)


_authority = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "B", ""]) | st.text(max_size=8)},
    optional={
        "key": st.fixed_dictionaries(
            {},
            optional={
                "keyid": st.text(max_size=8),
                "public_key_pem": st.text(max_size=40),
                "signer_uri": st.sampled_from(["kms://x", "x"]) | st.text(max_size=10),
            },
        )
        | _values,
        "keyless": st.fixed_dictionaries(
            {"issuer": st.text(max_size=10)},
            optional={
                "subject": st.text(max_size=10),
                "subject_regex": st.sampled_from(["(", ".*", "a{2,1}", r"\pL{1000}"])
                | st.text(max_size=10),
            },
        )
        | _values,
    },
)
_sections = st.fixed_dictionaries(
    {
        "apiVersion": st.just("attestor.dev/v1alpha1"),
        "kind": st.just("Policy"),
        "id": st.just("p"),
        "version": st.just("1"),
        "scope": st.lists(
            st.fixed_dictionaries(
                {"registry": st.sampled_from(["localhost:*", "*.a.b", "x y"])},
                optional={"repositories": st.lists(st.text(max_size=6), max_size=2)},
            ),
            max_size=2,
        ),
    },
    optional={
        "mode": st.sampled_from(["enforce", "warn", "audit", "x"]) | _values,
        "signatures": st.fixed_dictionaries(
            {"authorities": st.lists(_authority, max_size=3) | _values},
            optional={
                "threshold": st.integers(-1, 5) | _values,
                "require_same_repository": _values,
            },
        ),
        "attestations": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["p", "q"]),
                    "predicate_type": st.sampled_from(
                        ["https://slsa.dev/provenance/v1", "https://x", ""]
                    ),
                    "authorities": st.lists(_authority, max_size=2),
                },
                optional={
                    "conditions": st.fixed_dictionaries(
                        {},
                        optional={
                            "builder_id": st.lists(st.text(max_size=5), max_size=2),
                            "fields": st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "path": st.sampled_from(["$.a", "$", "$[0]", "$..a", "a"])
                                        | st.text(max_size=8),
                                        "values": st.lists(_scalars, max_size=2),
                                    }
                                ),
                                max_size=2,
                            ),
                        },
                    )
                },
            ),
            max_size=2,
        ),
        "max_age": st.sampled_from(["1d", "0d", "99999999w", "1x"]) | _values,
        "forbidden_base_layers": st.lists(
            st.sampled_from(["sha256:" + "a" * 12, "sha256:a"]) | st.text(max_size=8), max_size=2
        ),
        "rules": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["r", "s"]),
                    "expression": st.sampled_from(
                        ["true", "1 +", "image.x", "size(config) > 0", "((((", "foo"]
                    )
                    | st.text(max_size=20),
                }
            ),
            max_size=2,
        ),
    },
)


def _check(data: bytes) -> None:
    try:
        result = parse_policy(data)
    except InvalidInput:
        return
    assert isinstance(result, Policy)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8) | _values)
def test_random_documents(doc: object) -> None:
    _check(yaml.safe_dump(doc).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near_valid)
def test_near_valid_documents(doc: dict[str, object]) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sections)
def test_near_valid_sections(doc: dict[str, object]) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True).encode())
    _check(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}:-,&*!|>'\"#%@` \n\tab1", max_size=80))
def test_yaml_syntax_soup(text: str) -> None:
    _check(text.encode())


_registry_text = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[a-zA-Z0-9.\-\[\]:]{1,40}\Z"),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "eu.example.com"]).flatmap(
        lambda h: st.sampled_from([h, h + ":5000", h + ":", h + ":x"])
    ),
)


@settings(max_examples=300, deadline=None)
@given(_registry_text, st.text(max_size=40))
def test_evaluate_never_crashes(registry: str, repository: str) -> None:
    from attestor.policy import PolicySet, RegistryRule, evaluate
    from attestor.policy.model import Policy as P

    rules = (
        RegistryRule(host="localhost:*", require_signatures=False),
        RegistryRule(host="*.example.com:*", repositories=("a/*", "b/**")),
        RegistryRule(host="[::1]:5000", repositories=("x?",), require_signatures=False),
    )
    ps = PolicySet((P(id="p", version="1", registries=rules),))

    class Ref:
        pass

    ref = Ref()
    ref.registry = registry  # type: ignore[attr-defined]
    ref.repository = repository  # type: ignore[attr-defined]
    try:
        decision = evaluate(ps, ref)  # type: ignore[arg-type]
    except InvalidInput:
        assert not registry or not repository
        return
    assert decision.reasons
    if decision.allowed:
        # Only loopback hosts admit without signatures.
        assert registry.lower().split(":")[0] in {"localhost", "["}


_any_text = st.text(st.characters(blacklist_categories=()), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_any_text | _keys, _any_text | st.lists(_any_text, max_size=2), max_size=4),
    _sections,
)
def test_json_with_any_code_point(extra: dict[str, object], doc: dict[str, object]) -> None:
    # Lone surrogates (Cs) included: JSON's \ud800 escapes produce them.
    _check(json.dumps({**doc, **extra}).encode())
    merged = dict(doc)
    if isinstance(merged.get("scope"), list) and merged["scope"]:
        merged["scope"] = [{"registry": "localhost:*", "repositories": list(extra)[:2] or ["a"]}]
    _check(json.dumps(merged).encode())
