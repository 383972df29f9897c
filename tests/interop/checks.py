# SPDX-License-Identifier: Apache-2.0
"""Independent checks of our envelopes and bundles: openssl, sigstore-js, cosign's rules.

None of these use attestor's verification code: each rebuilds what it needs
itself, so a bug in our verifier cannot hide a bug in our signer.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.harness.binaries import require, unavailable

INTEROP_DIR = Path(__file__).resolve().parent
VERIFY_BUNDLE_JS = INTEROP_DIR / "verify_bundle.mjs"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
_TIMEOUT = 60


def _pae(payload_type: str, payload: bytes) -> bytes:
    # DSSE protocol.md, written out again on purpose (independent of attestor.dsse).
    t = payload_type.encode()
    return b"DSSEv1 " + b" ".join([str(len(t)).encode(), t, str(len(payload)).encode(), payload])


def _openssl_key_type(openssl: str, key_path: Path) -> str:
    out = subprocess.run(
        [openssl, "pkey", "-pubin", "-in", str(key_path), "-noout", "-text"],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=True,
    ).stdout
    return "ed25519" if out.startswith("ED25519") else "other"


def openssl_verify_envelope(envelope: dict[str, Any], public_key_pem: str, tmp: Path) -> bool:
    """Whether any signature verifies over the rebuilt PAE, checked by the openssl CLI.

    ECDSA: ``openssl dgst -sha256 -verify``; Ed25519: ``openssl pkeyutl -verify -rawin``.
    """
    openssl = require("openssl")
    tmp.mkdir(parents=True, exist_ok=True)
    key_path = tmp / "key.pub"
    key_path.write_text(public_key_pem)
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError):
        return False
    data_path = tmp / "pae.bin"
    data_path.write_bytes(_pae(envelope["payloadType"], payload))
    key_type = _openssl_key_type(openssl, key_path)
    for i, sig in enumerate(sigs):
        sig_path = tmp / f"sig{i}.bin"
        sig_path.write_bytes(sig)
        if key_type == "ed25519":
            cmd = [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(key_path), "-rawin",
                   "-in", str(data_path), "-sigfile", str(sig_path)]  # fmt: skip
        else:
            cmd = [openssl, "dgst", "-sha256", "-verify", str(key_path),
                   "-signature", str(sig_path), str(data_path)]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT, check=False)
        if result.returncode == 0:
            return True
    return False


def _node_ready() -> str:
    node = require("node")
    if not (INTEROP_DIR / "node_modules" / "@sigstore" / "verify").is_dir():
        unavailable("tests/interop/node_modules missing: run `npm ci` in tests/interop")
    return node


def sigstore_js_verify_bundle(bundle: dict[str, Any], public_key_pem: str) -> bool:
    """Whether ``@sigstore/verify`` accepts the key-based bundle (exit 0 of verify_bundle.mjs).

    Skips (fails under CI=true) when node or tests/interop/node_modules is missing.
    """
    node = _node_ready()
    with tempfile.TemporaryDirectory() as d:
        bundle_path = Path(d) / "bundle.json"
        key_path = Path(d) / "key.pub"
        bundle_path.write_text(json.dumps(bundle))
        key_path.write_text(public_key_pem)
        result = subprocess.run(
            [node, str(VERIFY_BUNDLE_JS), str(bundle_path), str(key_path)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            cwd=INTEROP_DIR,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"verify_bundle.mjs failed to run: {result.stderr.strip()}")
    return result.returncode == 0


def _verify_like_cosign(public_key_pem: str, sig: bytes, data: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem.encode())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


_STATEMENT_FIELDS = {"_type", "subject", "predicateType", "predicate"}


def cosign_checks(envelope: dict[str, Any], public_key_pem: str, artifact_sha256: str) -> bool:
    """What ``cosign verify-blob-attestation --key cosign.pub --type slsaprovenance1
    --insecure-ignore-tlog --signature envelope.json ARTIFACT`` checks (cosign is not
    installable here; see FACTS.md):

    1. a signature verifies over the PAE with the key, ignoring the keyid;
    2. the payload parses strictly as an in-toto Statement (an unknown top-level
       field fails);
    3. predicateType is ``https://slsa.dev/provenance/v1``;
    4. a subject's sha256 equals the artifact's.
    """
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
        data = _pae(envelope["payloadType"], payload)
    except (KeyError, TypeError, ValueError):
        return False
    if not any(_verify_like_cosign(public_key_pem, sig, data) for sig in sigs):
        return False
    try:
        statement = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(statement, dict) or set(statement) - _STATEMENT_FIELDS:
        return False
    if statement.get("predicateType") != SLSA_PROVENANCE_V1:
        return False
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        return False
    return any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == artifact_sha256
        for s in subjects
    )


def node_available() -> bool:
    """Whether node and the interop node_modules are installed."""
    return shutil.which("node") is not None and (INTEROP_DIR / "node_modules").is_dir()
