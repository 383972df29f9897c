# SPDX-License-Identifier: Apache-2.0
"""Policy evaluation against gathered evidence, next to one ECDSA P-256 verify.

The policy: 3 signature authorities (two keys and a keyless identity,
threshold 2), one SLSA provenance v1 requirement (builder id, source
repository and ref), max_age, 2 CEL rules over the config. The evidence is
what an adapter hands over after fetching and verifying (the "cached
artifacts"): 3 verified signatures, 1 verified provenance attestation, a
20-layer image config. Measured per call, interleaved in rounds with the raw
cost of one ECDSA P-256 signature verification (cryptography) in the same
process: p50 and p99 of each, and the ratio. Target: evaluation p99 < 5 ms.

Also printed: parsing the policy (once per policy change), building the
evidence (once per fetch) and the first evaluation of a fresh evidence
object, which converts the CEL input once (``Evidence.rule_input``).

Usage: .venv/bin/python bench/bench_policy_eval.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _host import print_host  # bench/_host.py, beside this file
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.policy import (
    Evidence,
    ImageEvidence,
    PolicySet,
    VerifiedAttestation,
    VerifiedSignature,
    VerifiedSigner,
    evaluate_image,
    parse_policy,
)

KEY_A, KEY_B = "a1" * 32, "b2" * 32
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
BUILDER = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0"
DIGEST = "sha256:" + "a" * 64
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)

POLICY = f"""\
apiVersion: attestor.dev/v1alpha1
kind: Policy
id: bench
version: "1"
scope:
  - registry: "registry.example.com:5000"
    repositories: ["team/**"]
signatures:
  threshold: 2
  require_same_repository: true
  authorities:
    - name: key-a
      key: {{keyid: "{KEY_A}"}}
    - name: key-b
      key: {{keyid: "{KEY_B}"}}
    - name: release
      keyless:
        issuer: {ISSUER}
        subject_regex: "https://github\\\\.com/example/app/\\\\.github/workflows/release\\\\.yml@refs/heads/main"
attestations:
  - name: provenance
    predicate_type: https://slsa.dev/provenance/v1
    authorities:
      - name: ci
        keyless: {{issuer: "{ISSUER}", subject: "{WORKFLOW}"}}
    conditions:
      builder_id: ["{BUILDER}"]
      source_repository: ["https://github.com/example/app"]
      source_ref: ["refs/heads/main"]
max_age: 90d
rules:
  - name: non-root
    expression: 'config.config.User != "root" && config.config.User != "0"'
  - name: no-debug-env
    expression: 'config.config.Env.all(e, !e.startsWith("DEBUG="))'
"""


def evidence() -> Evidence:
    layers = tuple(f"sha256:{i:064x}" for i in range(20))
    diff_ids = tuple(f"sha256:{i + 100:064x}" for i in range(20))
    config = {
        "created": "2026-12-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "app", "Env": [f"VAR{i}=value{i}" for i in range(12)]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created_by": f"RUN step {i}"} for i in range(20)],
    }
    predicate = {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "repository": "https://github.com/example/app",
                    "ref": "refs/heads/main",
                    "path": ".github/workflows/release.yml",
                }
            },
            "resolvedDependencies": [{"uri": "git+https://github.com/example/app@refs/heads/main"}],
        },
        "runDetails": {"builder": {"id": BUILDER}},
    }
    ref = "registry.example.com:5000/team/app"
    keyless = VerifiedSigner(issuer=ISSUER, subject=WORKFLOW)
    return Evidence(
        image=ImageEvidence(
            registry="registry.example.com:5000",
            repository="team/app",
            manifest_digest=DIGEST,
            config=config,
            layer_digests=layers,
            diff_ids=diff_ids,
        ),
        signatures=(
            VerifiedSignature(VerifiedSigner(keyid=KEY_A), DIGEST, ref),
            VerifiedSignature(VerifiedSigner(keyid="cc" * 32), DIGEST, ref),
            VerifiedSignature(keyless, DIGEST, ref),
        ),
        attestations=(
            VerifiedAttestation("https://slsa.dev/provenance/v1", predicate, keyless, (DIGEST,)),
        ),
    )


def timed(fn: Callable[[], Any], calls: int) -> list[float]:
    return timed_both(fn, calls)[0]


def timed_both(fn: Callable[[], Any], calls: int) -> tuple[list[float], list[float]]:
    """Wall time and this thread's CPU time per call.

    On a shared 2-core host the wall p99 of a sub-millisecond call is mostly
    the other processes' time slices; the CPU time excludes them.
    """
    wall, cpu = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return wall, cpu


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_host()

    parse = timed(lambda: parse_policy(POLICY.encode(), source="bench"), 50)
    policy_set = PolicySet((parse_policy(POLICY.encode(), source="bench"),))
    build = timed(evidence, 200)
    ev = evidence()
    decision = evaluate_image(policy_set, ev, NOW)
    assert decision.allowed, decision.reasons
    assert [r.status for r in decision.results[0].rules] == ["passed"] * 6

    key = ec.generate_private_key(ec.SECP256R1())
    message = b"x" * 256
    sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()

    def verify() -> None:
        public.verify(sig, message, ec.ECDSA(hashes.SHA256()))

    print(f"parse_policy (once per policy change): p50 {pct(parse, 0.5):.2f} ms")
    print(f"build Evidence (once per fetch): p50 {pct(build, 0.5) * 1e3:.0f} us")
    fresh = [evidence() for _ in range(200)]
    first = timed(lambda: evaluate_image(policy_set, fresh.pop(), NOW), 200)
    print(
        f"first evaluation of a fresh Evidence (CEL input converted): p50 {pct(first, 0.5):.3f} ms"
        "; later evaluations of the same Evidence reuse the conversion (below)"
    )
    print(
        "wall = elapsed per call; cpu = this thread's CPU time per call "
        "(excludes other processes' time slices)"
    )
    print(
        f"{'round':>5} {'eval p50':>9} {'eval p99':>9} {'cpu p99':>9} {'+json p50':>10} "
        f"{'verify p50':>11} {'verify p99':>11} {'vfy cpu p99':>11} {'p50 ratio':>10}"
    )
    p99s, cpu99s = [], []
    for r in range(args.rounds):
        ev_wall, ev_cpu = timed_both(lambda: evaluate_image(policy_set, ev, NOW), args.calls)
        js_times = timed(lambda: evaluate_image(policy_set, ev, NOW).to_json(), args.calls // 4)
        v_wall, v_cpu = timed_both(verify, args.calls)
        p99s.append(pct(ev_wall, 0.99))
        cpu99s.append(pct(ev_cpu, 0.99))
        print(
            f"{r:>5} {pct(ev_wall, 0.5):>7.3f}ms {pct(ev_wall, 0.99):>7.3f}ms "
            f"{pct(ev_cpu, 0.99):>7.3f}ms {pct(js_times, 0.5):>8.3f}ms "
            f"{pct(v_wall, 0.5) * 1e3:>9.0f}us {pct(v_wall, 0.99) * 1e3:>9.0f}us "
            f"{pct(v_cpu, 0.99) * 1e3:>9.0f}us "
            f"{pct(ev_wall, 0.5) / pct(v_wall, 0.5):>9.1f}x"
        )
    verdict = "met" if max(p99s) < 5.0 else "NOT met"
    print(
        f"evaluation p99 over rounds: wall {min(p99s):.3f}-{max(p99s):.3f} ms "
        f"(median {statistics.median(p99s):.3f}), cpu {min(cpu99s):.3f}-{max(cpu99s):.3f} ms; "
        f"target wall p99 < 5 ms: {verdict}"
    )


if __name__ == "__main__":
    main()
