# SPDX-License-Identifier: Apache-2.0
"""The signatures rule: authorities, N of M, payload digest and repository."""

from __future__ import annotations

import json

import pytest

from attestor.errors import PolicyDenied
from attestor.policy import RuleResult, VerifiedSigner, evaluate_image, require_image_admitted
from tests.unit.policy._build import (
    DIGEST,
    INDEX_DIGEST,
    NOW,
    OTHER_DIGEST,
    REGISTRY,
    WORKFLOW,
    evidence,
    key_authority,
    key_signer,
    keyless_authority,
    keyless_signer,
    one_set,
    policy,
    public_pem,
    signature,
)

KEY_A = "a1" * 32
KEY_B = "b2" * 32
KEY_C = "c3" * 32


def _rule(decision_results: object, rule: str = "signatures") -> RuleResult:
    (result,) = decision_results  # type: ignore[misc]
    return next(r for r in result.rules if r.rule == rule)


def _threshold_policy(threshold: int = 2) -> object:
    return policy(
        signatures={
            "threshold": threshold,
            "authorities": [
                key_authority("key-a", KEY_A),
                key_authority("key-b", KEY_B),
                keyless_authority("release", WORKFLOW),
            ],
        }
    )


def test_threshold_met_names_authorities() -> None:
    ev = evidence(signatures=(signature(key_signer(KEY_A)), signature(keyless_signer())))
    decision = evaluate_image(one_set(_threshold_policy()), ev, NOW)  # type: ignore[arg-type]
    assert decision.allowed
    rule = _rule(decision.results)
    assert (rule.status, rule.effect) == ("passed", "none")
    # The decision records who vouched: the authority and the actual signer.
    assert decision.satisfied_authorities == (
        {"policy": "p", "rule": "signatures", "authority": "key-a", "keyid": KEY_A},
        {
            "policy": "p",
            "rule": "signatures",
            "authority": "release",
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": WORKFLOW,
        },
    )


def test_threshold_not_met_says_who_matched() -> None:
    ev = evidence(signatures=(signature(key_signer(KEY_A)), signature(key_signer(KEY_C))))
    decision = evaluate_image(one_set(_threshold_policy()), ev, NOW)  # type: ignore[arg-type]
    assert not decision.allowed
    rule = _rule(decision.results)
    assert (rule.status, rule.effect, rule.authorities) == ("failed", "refuse", ())
    assert rule.reason.startswith(
        "signature threshold 2 of 3 not met: matched key-a (key a1a1a1a1a1a1a1a1…) only"
    )
    assert "by signers that are not authorities: key c3c3c3c3c3c3c3c3…" in rule.reason
    assert decision.reasons == (f"policy p version 1: {rule.reason}",)


def test_same_signer_twice_counts_once() -> None:
    ev = evidence(signatures=(signature(key_signer(KEY_A)), signature(key_signer(KEY_A))))
    decision = evaluate_image(one_set(_threshold_policy()), ev, NOW)  # type: ignore[arg-type]
    assert not decision.allowed


def test_overlapping_authorities_cannot_share_one_signer() -> None:
    # Two keyless patterns both match the one workflow identity: one signer
    # satisfies one authority, so 2 of 2 is not met by a single signature.
    p = policy(
        signatures={
            "threshold": 2,
            "authorities": [
                keyless_authority("any-example", "https://github.com/example/.*", regex=True),
                keyless_authority("release", WORKFLOW),
            ],
        }
    )
    decision = evaluate_image(one_set(p), evidence(signatures=(signature(keyless_signer()),)), NOW)
    assert not decision.allowed
    assert "2 of 2 not met: matched" in _rule(decision.results).reason
    # A second, distinct signer for the pattern completes it.
    other = keyless_signer(
        "https://github.com/example/other/.github/workflows/x.yml@refs/heads/main"
    )
    both = evidence(signatures=(signature(keyless_signer()), signature(other)))
    assert evaluate_image(one_set(p), both, NOW).allowed


def test_signature_over_another_digest_does_not_count() -> None:
    p = policy(signatures={"authorities": [key_authority("key-a", KEY_A)]})
    ev = evidence(signatures=(signature(key_signer(KEY_A), digest=OTHER_DIGEST),))
    decision = evaluate_image(one_set(p), ev, NOW)
    assert not decision.allowed
    reason = _rule(decision.results).reason
    assert "no signature by any of its authorities" in reason
    assert "ignored, naming another digest: sha256:bbbbbbbbbbbb…" in reason


def test_signature_over_the_index_counts() -> None:
    p = policy(signatures={"authorities": [key_authority("key-a", KEY_A)]})
    ev = evidence(
        signatures=(signature(key_signer(KEY_A), digest=INDEX_DIGEST),), index_digest=INDEX_DIGEST
    )
    assert evaluate_image(one_set(p), ev, NOW).allowed


@pytest.mark.parametrize(
    ("reference", "counts"),
    [
        (f"{REGISTRY}/team/app", True),
        (f"{REGISTRY}/team/app:v1", True),
        (f"{REGISTRY}/team/app@{DIGEST}", True),
        (f"{REGISTRY.upper()}/team/app", True),
        (f"{REGISTRY}/team/other", False),
        ("registry.example.com/team/app", False),
        ("evil.example.com:5000/team/app", False),
        (f"{REGISTRY}/team/app/sub", False),
        ("", False),
    ],
)
def test_require_same_repository(reference: str, counts: bool) -> None:
    p = policy(
        signatures={"require_same_repository": True, "authorities": [key_authority("k", KEY_A)]}
    )
    ev = evidence(signatures=(signature(key_signer(KEY_A), reference=reference),))
    decision = evaluate_image(one_set(p), ev, NOW)
    assert decision.allowed is counts
    if not counts:
        assert "ignored, naming another repository" in _rule(decision.results).reason
    # Without the option the repository named by the payload is not checked (as cosign).
    loose = policy(signatures={"authorities": [key_authority("k", KEY_A)]})
    assert evaluate_image(one_set(loose), ev, NOW).allowed


@pytest.mark.parametrize(
    ("signer", "counts"),
    [
        (keyless_signer(), True),
        (keyless_signer(WORKFLOW.replace("main", "dev")), False),
        (keyless_signer(WORKFLOW + "x"), False),
        (keyless_signer(issuer="https://accounts.google.com"), False),
        (key_signer(KEY_A), False),
    ],
)
def test_keyless_exact_identity(signer: VerifiedSigner, counts: bool) -> None:
    p = policy(signatures={"authorities": [keyless_authority("release", WORKFLOW)]})
    decision = evaluate_image(one_set(p), evidence(signatures=(signature(signer),)), NOW)
    assert decision.allowed is counts


@pytest.mark.parametrize(
    ("subject", "counts"),
    [
        ("https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.2", True),
        ("https://github.com/example/app/.github/workflows/release.yml@refs/heads/main", False),
        # The pattern must match the whole subject, not a part of it.
        (
            "https://evil.example/?https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1",
            False,
        ),
        ("https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1\n", False),
    ],
)
def test_keyless_subject_regex_is_anchored(subject: str, counts: bool) -> None:
    pattern = r"https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*"
    p = policy(signatures={"authorities": [keyless_authority("tags", pattern, regex=True)]})
    ev = evidence(signatures=(signature(keyless_signer(subject)),))
    assert evaluate_image(one_set(p), ev, NOW).allowed is counts


def test_public_key_pem_authority_matches_its_keyid() -> None:
    pem, keyid = public_pem()
    p = policy(signatures={"authorities": [{"name": "pem", "key": {"public_key_pem": pem}}]})
    assert p.signatures is not None
    assert p.signatures.authorities[0].keyid == keyid
    assert evaluate_image(
        one_set(p), evidence(signatures=(signature(key_signer(keyid)),)), NOW
    ).allowed
    other = evidence(signatures=(signature(key_signer(KEY_A)),))
    assert not evaluate_image(one_set(p), other, NOW).allowed


def test_signer_uri_authority() -> None:
    uri = "awskms:///arn:aws:kms:eu-west-1:1:key/release"
    p = policy(signatures={"authorities": [{"name": "kms", "key": {"signer_uri": uri}}]})
    ok = VerifiedSigner(keyid=KEY_B, signer_uri=uri)
    assert evaluate_image(one_set(p), evidence(signatures=(signature(ok),)), NOW).allowed
    wrong = VerifiedSigner(keyid=KEY_B, signer_uri=uri + "2")
    assert not evaluate_image(one_set(p), evidence(signatures=(signature(wrong),)), NOW).allowed


def test_signatures_not_gathered_fail_closed() -> None:
    p = policy(signatures={"authorities": [key_authority("key-a", KEY_A)]})
    decision = evaluate_image(one_set(p), evidence(signatures=None), NOW)
    assert not decision.allowed
    assert _rule(decision.results).reason == (
        "signatures: not gathered for this image (fail closed)"
    )


def test_no_signatures_found() -> None:
    p = policy(signatures={"authorities": [key_authority("key-a", KEY_A)]})
    with pytest.raises(PolicyDenied) as info:
        require_image_admitted(one_set(p), evidence(signatures=()), NOW)
    detail = info.value.detail
    assert detail["image"] == f"{REGISTRY}/team/app@{DIGEST}"
    decision = detail["decision"]
    assert isinstance(decision, dict)
    assert decision["allowed"] is False
    assert decision["policies"][0]["rules"][1]["reason"].startswith(
        "signature threshold 1 of 1 not met: no signature by any of its authorities (0 signature(s)"
    )


def test_verified_signer_must_name_one_kind() -> None:
    from attestor.errors import InvalidInput

    with pytest.raises(InvalidInput):
        VerifiedSigner()
    with pytest.raises(InvalidInput):
        VerifiedSigner(keyid=KEY_A, issuer=ISSUER_X, subject="s")
    with pytest.raises(InvalidInput):
        VerifiedSigner(issuer=ISSUER_X)


ISSUER_X = "https://issuer.example"


def test_subject_that_is_not_unicode_never_matches() -> None:
    p = policy(signatures={"authorities": [keyless_authority("any", ".*", regex=True)]})
    odd = evidence(signatures=(signature(keyless_signer("https://x/\ud800")),))
    decision = evaluate_image(one_set(p), odd, NOW)
    assert not decision.allowed
    # The reason quotes the subject; the decision still serializes.
    assert "identity https://x/\\ud800 from" in json.loads(decision.to_json())["reasons"][0]
