# SPDX-License-Identifier: Apache-2.0
"""Latency of one ``attestor verify-bundle`` CLI run next to in-process verification.

Runs the conformance CLI as a subprocess several times (median; this includes
interpreter start and imports, the floor of any CLI) and times the same
verification in-process with a reused ``BundleVerifier``.

    .venv/bin/python bench/bench_verify_bundle_cli.py [--runs 7] [--cases DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _host import print_host  # bench/_host.py, beside this file
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestor.verify import Verifier
from attestor.verify._crypto import load_public_key
from attestor.verify.bundle import Artifact, BundleVerifier, CertificateIdentity
from attestor.verify.trust import load_trusted_root, public_good

REPO = Path(__file__).resolve().parents[1]
CASES = REPO.parent / "shared" / "conformance" / "bundle-verify"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


def _cli_args(case: Path, artifact: Path) -> list[str]:
    args = ["--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        args += ["--key", str(case / "key.pub")]
    else:
        args += ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
    if (case / "trusted_root.json").exists():
        args += ["--trusted-root", str(case / "trusted_root.json")]
    return [*args, str(artifact)]


def _bench(case: Path, runs: int) -> None:
    artifact_path = case / "artifact" if (case / "artifact").exists() else case.parent / "a.txt"
    cmd = [sys.executable, "-m", "attestor.cli.verify_bundle", *_cli_args(case, artifact_path)]
    cli: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, check=False)
        cli.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{case.name}: CLI rejected: {proc.stderr.decode().strip()}")
    trust = (
        load_trusted_root(case / "trusted_root.json")
        if (case / "trusted_root.json").exists()
        else public_good("production")
    )
    verifier = BundleVerifier(trust)
    bundle = (case / "bundle.sigstore.json").read_bytes()
    artifact = Artifact.from_bytes(artifact_path.read_bytes())
    kwargs: dict[str, object] = (
        {"key": load_public_key((case / "key.pub").read_bytes())}
        if (case / "key.pub").exists()
        else {"identity": CertificateIdentity(IDENTITY, ISSUER)}
    )
    now = datetime.now(UTC)
    n = max(runs * 10, 50)
    start = time.perf_counter()
    for _ in range(n):
        # What the CLI does without --predicate-type: the Sigstore layer, then
        # the envelope through the one verifier with the signing key.
        material = verifier.signing_material(bundle, artifact, now=now, **kwargs)  # type: ignore[arg-type]
        if material.envelope is not None:
            Verifier(keys=[material.key], any_predicate_type=True).verify_envelope(
                material.envelope, artifact_digest=material.artifact_sha256
            )
    per = (time.perf_counter() - start) / n
    print(
        f"{case.name:32s} CLI median {statistics.median(cli) * 1000:7.1f} ms "
        f"(min {min(cli) * 1000:6.1f}, {runs} runs) | in-process {per * 1000:6.2f} ms/verify "
        f"({1 / per:6.0f}/s) | CLI overhead {(statistics.median(cli) - per) * 1000:6.1f} ms"
    )


def _python_floor(runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_verify_rate(seconds: float = 1.0) -> float:
    """ECDSA P-256 verifications per CPU second (what a bundle check does once or twice)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public, data = key.public_key(), b"x" * 512
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        for _ in range(100):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        n += 100
    return n / (time.process_time() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cases", type=Path, default=CASES)
    opts = parser.parse_args()
    print_host()
    if not opts.cases.is_dir():
        raise SystemExit(f"no conformance cases at {opts.cases}")
    print(f"raw limit: bare `python -c pass` median {_python_floor(opts.runs) * 1000:.1f} ms")
    print(f"raw rate: {_raw_verify_rate():,.0f} ECDSA P-256 verifies/s (1 core, CPU time)")
    for name in ("happy-path-v0.3", "rekor2-dsse-happy-path", "managed-key-happy-path"):
        if (opts.cases / name).is_dir():
            _bench(opts.cases / name, opts.runs)


if __name__ == "__main__":
    main()
