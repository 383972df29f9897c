# SPDX-License-Identifier: Apache-2.0
"""Write vectors.json: policy documents + evidence -> expected decision.

Run from the repository root: ``.venv/bin/python tests/assets/policy-vectors/make_vectors.py``.
The expected decisions are computed by attestor.policy and were then read
and checked by hand; a change to them must be reviewed in the diff, since
tests/unit/policy/test_policy_vectors.py holds the engine to them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.unit.policy._build import provenance_v1  # noqa: E402
from tests.unit.policy.test_policy_vectors import decide  # noqa: E402

D = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
L1, L2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
R1, R2 = "sha256:" + "3" * 64, "sha256:" + "4" * 64
KEY_A = "a1" * 32
KEY_B = "b2" * 32
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
BUILDER = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v2.0.0"
)

HEAD = 'apiVersion: attestor.dev/v1alpha1\nkind: Policy\nversion: "1"\n'
SCOPE = 'scope:\n  - registry: "registry.example.com:5000"\n    repositories: ["team/**"]\n'

DEV = HEAD + 'id: dev\nscope:\n  - registry: "127.0.0.1:*"\n  - registry: "localhost:*"\n'
TWO_KEYS = (
    HEAD
    + "id: two-keys\n"
    + SCOPE
    + "signatures:\n  threshold: 2\n  authorities:\n"
    + f'    - name: key-a\n      key: {{keyid: "{KEY_A}"}}\n'
    + f'    - name: key-b\n      key: {{keyid: "{KEY_B}"}}\n'
    + f"    - name: release\n      keyless:\n        issuer: {ISSUER}\n"
    + f'        subject: "{WORKFLOW}"\n'
)
PROVENANCE = (
    HEAD
    + "id: provenance\n"
    + SCOPE
    + "attestations:\n  - name: slsa\n    predicate_type: https://slsa.dev/provenance/v1\n"
    + f'    authorities:\n      - name: ci\n        keyless: {{issuer: "{ISSUER}", '
    + f'subject: "{WORKFLOW}"}}\n'
    + f'    conditions:\n      builder_id: ["{BUILDER}"]\n'
    + '      source_repository: ["https://github.com/example/app"]\n'
    + '      source_ref: ["refs/heads/main"]\n'
)
HYGIENE_AUDIT = (
    HEAD
    + "id: hygiene\nmode: audit\n"
    + SCOPE
    + "max_age: 30d\n"
    + f'forbidden_base_layers: ["{R1[:19]}"]\n'
    + "rules:\n  - name: non-root\n    expression: 'config.config.User != \"root\"'\n"
    + "    message: the image must not run as root\n"
)
HYGIENE_WARN = HYGIENE_AUDIT.replace("mode: audit", "mode: warn").replace(
    "id: hygiene", "id: hygiene-warn"
)

IMAGE = {
    "registry": "registry.example.com:5000",
    "repository": "team/app",
    "manifest_digest": D,
    "config": {
        "created": "2026-12-01T00:00:00Z",
        "config": {"User": "app"},
        "rootfs": {"type": "layers", "diff_ids": [R1, R2]},
    },
    "layer_digests": [L1, L2],
    "diff_ids": [R1, R2],
}


def provenance(builder: str) -> dict[str, Any]:
    """A verified SLSA v1 provenance attestation about D, built by ``builder``."""
    return {
        "predicate_type": "https://slsa.dev/provenance/v1",
        "predicate": provenance_v1(builder=builder),
        "signer": KEYLESS,
        "subject_digests": [D],
    }


def sig(keyid: str | None = None, digest: str = D, **signer: str) -> dict[str, Any]:
    who = {"keyid": keyid} if keyid else signer
    return {
        "signer": who,
        "manifest_digest": digest,
        "docker_reference": "registry.example.com:5000/team/app",
    }


KEYLESS = {"issuer": ISSUER, "subject": WORKFLOW}

CASES: list[dict[str, Any]] = [
    {
        "name": "dev-admits-loopback",
        "policies": [DEV],
        "evidence": {
            "image": {**IMAGE, "registry": "127.0.0.1:5000"},
            "signatures": [],
            "attestations": [],
        },
    },
    {
        "name": "unscoped-image-refused",
        "policies": [DEV, TWO_KEYS],
        "evidence": {
            "image": {**IMAGE, "registry": "ghcr.io"},
            "signatures": [],
            "attestations": [],
        },
    },
    {
        "name": "threshold-2-of-3-met",
        "policies": [TWO_KEYS],
        "evidence": {
            "image": IMAGE,
            "signatures": [sig(KEY_A), sig(**KEYLESS)],
            "attestations": [],
        },
    },
    {
        "name": "threshold-not-met-other-digest-ignored",
        "policies": [TWO_KEYS],
        "evidence": {
            "image": IMAGE,
            "signatures": [sig(KEY_A), sig(KEY_B, digest=OTHER)],
            "attestations": [],
        },
    },
    {
        "name": "signatures-not-gathered-fail-closed",
        "policies": [TWO_KEYS],
        "evidence": {"image": IMAGE, "signatures": None, "attestations": []},
    },
    {
        "name": "provenance-from-named-builder",
        "policies": [PROVENANCE],
        "evidence": {
            "image": IMAGE,
            "signatures": [],
            "attestations": [provenance(BUILDER)],
        },
    },
    {
        "name": "provenance-from-another-builder",
        "policies": [PROVENANCE],
        "evidence": {
            "image": IMAGE,
            "signatures": [],
            "attestations": [provenance("https://evil.example/builder")],
        },
    },
    {
        "name": "audit-and-warn-record-without-refusing",
        "policies": [HYGIENE_AUDIT, HYGIENE_WARN],
        "evidence": {
            "image": {
                **IMAGE,
                "config": {
                    **IMAGE["config"],
                    "created": "2025-01-01T00:00:00Z",
                    "config": {"User": "root"},
                },
            },
            "signatures": [],
            "attestations": [],
        },
    },
    {
        "name": "enforce-refuses-while-audit-records",
        "policies": [HYGIENE_AUDIT, TWO_KEYS],
        "evidence": {"image": IMAGE, "signatures": [sig(KEY_A)], "attestations": []},
    },
]

NOW = "2026-12-08T12:00:00Z"


def main() -> None:
    vectors = []
    for case in CASES:
        vector = {**case, "now": NOW}
        vector["decision"] = decide(vector).to_dict()
        vectors.append(vector)
    text = json.dumps({"vectors": vectors}, indent=1, sort_keys=True, ensure_ascii=False)
    (HERE / "vectors.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
