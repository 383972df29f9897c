# SPDX-License-Identifier: Apache-2.0
"""Evaluation over random evidence: never crashes, always a valid decision, and
evidence about another image never changes it."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor import schemas
from attestor.policy import (
    Evidence,
    ImageEvidence,
    VerifiedAttestation,
    VerifiedSignature,
    VerifiedSigner,
    evaluate_image,
)
from tests.unit.policy._build import (
    BUILDER,
    DIGEST,
    NOW,
    OTHER_DIGEST,
    REGISTRY,
    SLSA_V1,
    WORKFLOW,
    config,
    key_authority,
    keyless_authority,
    one_set,
    policy,
    provenance_v1,
)

KEYS = ("a1" * 32, "b2" * 32, "c3" * 32)
_STRICT = policy(
    id="strict",
    signatures={
        "threshold": 2,
        "require_same_repository": True,
        "authorities": [
            key_authority("a", KEYS[0]),
            key_authority("b", KEYS[1]),
            keyless_authority("wf", WORKFLOW),
        ],
    },
    attestations=[
        {
            "name": "prov",
            "predicate_type": SLSA_V1,
            "authorities": [keyless_authority("wf", WORKFLOW)],
            "conditions": {"builder_id": [BUILDER], "source_ref": ["refs/heads/main"]},
        }
    ],
    max_age="30d",
    forbidden_base_layers=["sha256:" + "9" * 12],
    rules=[{"name": "user", "expression": 'config.config.User != "root"'}],
)
_AUDIT = policy(id="watch", mode="audit", max_age="1d")
POLICIES = one_set(_STRICT, _AUDIT)

_signers = st.sampled_from(
    [
        VerifiedSigner(keyid=KEYS[0]),
        VerifiedSigner(keyid=KEYS[1]),
        VerifiedSigner(keyid=KEYS[2]),
        VerifiedSigner(issuer="https://token.actions.githubusercontent.com", subject=WORKFLOW),
        VerifiedSigner(issuer="https://accounts.example", subject=WORKFLOW),
    ]
)
_refs = st.sampled_from([f"{REGISTRY}/team/app", f"{REGISTRY}/team/other", "", "x"])
_signatures = st.builds(
    VerifiedSignature,
    signer=_signers,
    manifest_digest=st.sampled_from([DIGEST, OTHER_DIGEST]),
    docker_reference=_refs,
)
_predicates = st.one_of(
    st.builds(provenance_v1, builder=st.sampled_from([BUILDER, "https://evil.example/b"])),
    st.just({}),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_attestations = st.builds(
    VerifiedAttestation,
    predicate_type=st.sampled_from([SLSA_V1, "https://example/other"]),
    predicate=_predicates,
    signer=_signers,
    subject_digests=st.sampled_from([(DIGEST,), (OTHER_DIGEST,), ()]),
)
_configs = st.one_of(
    st.none(),
    st.builds(
        config,
        created=st.sampled_from(
            ["2026-12-01T00:00:00Z", "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "x"]
        ),
        User=st.sampled_from(["app", "root"]),
    ),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


def _evidence(draw: Any) -> Evidence:
    return Evidence(
        image=ImageEvidence(
            registry=REGISTRY,
            repository="team/app",
            manifest_digest=DIGEST,
            config=draw(_configs),
            layer_digests=draw(st.none() | st.just(("sha256:" + "9" * 64,)) | st.just(())),
            diff_ids=draw(st.none() | st.just(())),
        ),
        signatures=draw(st.none() | st.lists(_signatures, max_size=5).map(tuple)),
        attestations=draw(st.none() | st.lists(_attestations, max_size=3).map(tuple)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_evidence(data: st.DataObject) -> None:
    evidence = _evidence(data.draw)
    decision = evaluate_image(POLICIES, evidence, NOW)
    schemas.validate(decision.to_dict(), "policy-decision")
    decision.to_json().decode("utf-8")
    enforce = [r for r in decision.results if r.mode == "enforce"]
    assert decision.allowed == all(r.passed for r in enforce)
    # Evidence about another digest never changes the decision.
    noise_sig = VerifiedSignature(
        VerifiedSigner(keyid=KEYS[1]), OTHER_DIGEST, f"{REGISTRY}/team/app"
    )
    noise_att = VerifiedAttestation(
        SLSA_V1,
        provenance_v1(),
        VerifiedSigner(issuer="https://token.actions.githubusercontent.com", subject=WORKFLOW),
        (OTHER_DIGEST,),
    )
    if evidence.signatures is not None and evidence.attestations is not None:
        noisy = Evidence(
            image=evidence.image,
            signatures=(*evidence.signatures, noise_sig),
            attestations=(*evidence.attestations, noise_att),
        )
        assert evaluate_image(POLICIES, noisy, NOW).allowed == decision.allowed
