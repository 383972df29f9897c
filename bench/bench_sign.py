# SPDX-License-Identifier: Apache-2.0
"""Signing rate of a key: raw ``cryptography`` sign next to our DSSE signing path.

For a key file made by ``generate_key_file`` (ECDSA P-256 and Ed25519) it
prints the raw ``cryptography`` signing rate over the PAE of a SLSA statement
(the ceiling), the securesystemslib ``CryptoSigner.sign`` rate, and
``sign_envelope`` + ``Envelope.to_json`` (what issuance does per layer), all
in this run, interleaved, best round in process CPU time.

    .venv/bin/python bench/bench_sign.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _host import print_host  # bench/_host.py, beside this file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402

from attestor.dsse import pae  # noqa: E402
from attestor.signing.dsse import sign_envelope  # noqa: E402
from attestor.signing.keys import generate_key_file, load_signer  # noqa: E402
from bench.bench_verify import best_rates  # noqa: E402
from tests.interop.samples import slsa_statement, statement_bytes  # noqa: E402


def _bench_key(algorithm: str, directory: Path, seconds: float) -> dict[str, float]:
    uri, info = generate_key_file(directory, algorithm)
    signer = load_signer(uri)
    private = serialization.load_pem_private_key(
        Path(uri.removeprefix("file://")).read_bytes(), password=None
    )
    payload = statement_bytes(slsa_statement())
    data = pae("application/vnd.in-toto+json", payload)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        ec_key = private

        def raw() -> object:
            return ec_key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        ed_key = private

        def raw() -> object:
            return ed_key.sign(data)

    return best_rates(
        {
            "raw cryptography sign (ceiling)": raw,
            "securesystemslib CryptoSigner.sign": lambda: signer.sign(data),
            "sign_envelope + to_json": lambda: sign_envelope(
                payload, signer, keyid=info.keyid
            ).to_json(),
        },
        seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per key type")
    args = parser.parse_args()
    print_host()
    print(f"{'key':<11} {'what':<36} {'per second':>11} {'vs raw':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ("ecdsa-p256", "ed25519"):
            rates = _bench_key(algorithm, Path(tmp) / algorithm, args.seconds)
            ceiling = rates["raw cryptography sign (ceiling)"]
            for what, per_second in rates.items():
                print(
                    f"{algorithm:<11} {what:<36} {per_second:>11,.0f} {per_second / ceiling:>6.0%}"
                )


if __name__ == "__main__":
    main()
