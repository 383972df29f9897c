# SPDX-License-Identifier: Apache-2.0
"""Helpers for the policy tests: documents and evidence built in a few lines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import SSlibKey

from attestor.policy import (
    Evidence,
    ImageEvidence,
    Policy,
    PolicySet,
    VerifiedAttestation,
    VerifiedSignature,
    VerifiedSigner,
    parse_policy,
)

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
REGISTRY = "registry.example.com:5000"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
INDEX_DIGEST = "sha256:" + "c" * 64
LAYERS = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)
DIFF_IDS = ("sha256:" + "3" * 64, "sha256:" + "4" * 64)
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
SLSA_V1 = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0"


def public_pem() -> tuple[str, str]:
    """A fresh P-256 public key PEM and its securesystemslib keyid."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return pem, SSlibKey.from_crypto(key).keyid


def document(**sections: Any) -> dict[str, Any]:
    """A valid policy document in scope of REGISTRY/team/*, plus ``sections``."""
    doc: dict[str, Any] = {
        "apiVersion": "attestor.dev/v1alpha1",
        "kind": "Policy",
        "id": "p",
        "version": "1",
        "scope": [{"registry": REGISTRY, "repositories": ["team/*"]}],
    }
    doc.update(sections)
    return doc


def policy(**sections: Any) -> Policy:
    """``document(**sections)`` parsed (so every test goes through the parser)."""
    return parse_policy(yaml.safe_dump(document(**sections)).encode(), source="test")


def key_authority(name: str, keyid: str) -> dict[str, Any]:
    return {"name": name, "key": {"keyid": keyid}}


def keyless_authority(name: str, subject: str, *, regex: bool = False) -> dict[str, Any]:
    field = "subject_regex" if regex else "subject"
    return {"name": name, "keyless": {"issuer": ISSUER, field: subject}}


def key_signer(keyid: str) -> VerifiedSigner:
    return VerifiedSigner(keyid=keyid)


def keyless_signer(subject: str = WORKFLOW, issuer: str = ISSUER) -> VerifiedSigner:
    return VerifiedSigner(issuer=issuer, subject=subject)


def signature(
    signer: VerifiedSigner, digest: str = DIGEST, reference: str = f"{REGISTRY}/{REPOSITORY}"
) -> VerifiedSignature:
    return VerifiedSignature(signer=signer, manifest_digest=digest, docker_reference=reference)


def provenance_v1(
    builder: str = BUILDER,
    repository: str = "https://github.com/example/app",
    ref: str = "refs/heads/main",
) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": ref,
                    "repository": repository,
                    "path": ".github/workflows/release.yml",
                }
            },
            "resolvedDependencies": [
                {"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": "ab" * 20}}
            ],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "1"}},
    }


def attestation(
    signer: VerifiedSigner,
    predicate: Mapping[str, Any] | None = None,
    *,
    predicate_type: str = SLSA_V1,
    subjects: tuple[str, ...] = (DIGEST,),
) -> VerifiedAttestation:
    return VerifiedAttestation(
        predicate_type=predicate_type,
        predicate=provenance_v1() if predicate is None else predicate,
        signer=signer,
        subject_digests=subjects,
    )


def config(created: str = "2026-12-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "app", "Env": ["PATH=/usr/bin"], **extra},
        "rootfs": {"type": "layers", "diff_ids": list(DIFF_IDS)},
    }


def evidence(
    *,
    signatures: tuple[VerifiedSignature, ...] | None = (),
    attestations: tuple[VerifiedAttestation, ...] | None = (),
    cfg: Mapping[str, Any] | None = None,
    digest: str = DIGEST,
    index_digest: str | None = None,
    repository: str = REPOSITORY,
    layers: tuple[str, ...] | None = LAYERS,
    diff_ids: tuple[str, ...] | None = DIFF_IDS,
    with_config: bool = True,
) -> Evidence:
    return Evidence(
        image=ImageEvidence(
            registry=REGISTRY,
            repository=repository,
            manifest_digest=digest,
            index_digest=index_digest,
            config=(cfg if cfg is not None else config()) if with_config else None,
            layer_digests=layers,
            diff_ids=diff_ids,
        ),
        signatures=signatures,
        attestations=attestations,
    )


def one_set(*policies: Policy) -> PolicySet:
    return PolicySet(tuple(policies), source="test")
