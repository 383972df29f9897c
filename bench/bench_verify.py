# SPDX-License-Identifier: Apache-2.0
"""DSSE envelopes verified per second in-process, next to the raw limit.

For ECDSA P-256 and Ed25519 keys and a realistic SLSA provenance v1 statement
it prints: the raw ``cryptography`` verify rate over the same PAE (the
ceiling: ``key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))``),
``parse_envelope`` alone, ``verify_envelope_signatures`` alone, and
the full ``Verifier.verify_envelope`` (parse + signature + statement + subject
+ predicate schema). All run in this process on one core, in interleaved
rounds timed in process CPU time; each figure is the best round, so load from
other processes on the shared cores skews the ratios less. The host line
(CPU model, cores, Python, OpenSSL) comes first: the raw rates move with the
host, the ratios are what to compare.

    .venv/bin/python bench/bench_verify.py [--seconds 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _host import print_host  # noqa: E402  # bench/_host.py, beside this file
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from securesystemslib.signer import CryptoSigner  # noqa: E402

from attestor.dsse import parse_envelope  # noqa: E402
from attestor.signing.dsse import sign_envelope  # noqa: E402
from attestor.verify import TrustedKey, Verifier  # noqa: E402
from attestor.verify.dsse import verify_envelope_signatures  # noqa: E402
from tests.interop.samples import LAYER_SHA256, slsa_statement, statement_bytes  # noqa: E402

ROUND_SECONDS = 0.2


def best_rates(fns: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Best calls-per-second of each function over interleaved rounds."""
    for fn in fns.values():  # warm caches (schema validator, imports)
        for _ in range(50):
            fn()
    best = dict.fromkeys(fns, 0.0)
    rounds = max(1, int(seconds / (ROUND_SECONDS * len(fns))))
    for _ in range(rounds):
        for name, fn in fns.items():
            n, start = 0, time.process_time()
            while True:
                for _ in range(50):
                    fn()
                n += 50
                elapsed = time.process_time() - start
                if elapsed >= ROUND_SECONDS:
                    break
            best[name] = max(best[name], n / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per key type")
    args = parser.parse_args()
    print_host()

    data_len = len(statement_bytes(slsa_statement()))
    print(f"payload: SLSA provenance v1 statement, {data_len} bytes; best of interleaved rounds")
    print(f"{'key':<11} {'what':<36} {'per second':>11} {'vs raw':>7}")
    for key_name, signer in (
        ("ecdsa-p256", CryptoSigner.generate_ecdsa()),
        ("ed25519", CryptoSigner.generate_ed25519()),
    ):
        rates = _bench_key(key_name, signer, args.seconds)
        ceiling = rates["raw cryptography verify (ceiling)"]
        for what, per_second in rates.items():
            print(f"{key_name:<11} {what:<36} {per_second:>11,.0f} {per_second / ceiling:>6.0%}")


def _bench_key(key_name: str, signer: CryptoSigner, seconds: float) -> dict[str, float]:
    key = signer.public_key._crypto_key()
    trusted = TrustedKey(keyid=signer.public_key.keyid, public_key=key, algorithm=key_name)
    envelope = sign_envelope(statement_bytes(slsa_statement()), signer, keyid=trusted.keyid)
    raw_json = envelope.to_json()
    pae, sig = envelope.pae(), envelope.signatures[0].sig
    verifier = Verifier(keys=[trusted])

    def raw_verify() -> None:
        # The plain cryptography call, as bench/bench_bulk_verify.py times it.
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, pae)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))

    return best_rates(
        {
            "raw cryptography verify (ceiling)": raw_verify,
            "parse_envelope": lambda: parse_envelope(raw_json),
            "verify_envelope_signatures": lambda: verify_envelope_signatures(envelope, [trusted]),
            "Verifier.verify_envelope (full)": lambda: verifier.verify_envelope(
                raw_json, artifact_digest=LAYER_SHA256
            ),
        },
        seconds,
    )


if __name__ == "__main__":
    main()
