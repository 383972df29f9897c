# SPDX-License-Identifier: Apache-2.0
"""Managed-key DSSE bundles: the statement inside is judged by the one verifier.

The bundle's own checks (log entry, key) pass for every bundle here; only the
signed statement is wrong. ``verify-bundle --key`` and ``BundleVerifier``
must refuse it with :class:`attestor.verify.Verifier`'s reason, and a bad
signature is the verifier's finding too, not a second checker's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.cli.verify_bundle import command
from attestor.dsse import pae
from attestor.errors import VerificationError
from attestor.verify.bundle import Artifact, BundleVerifier
from attestor.verify.trust import load_trusted_root
from tests.unit.verify.test_bundle_support import FakeLog, dsse_bundle, encode, pem, statement

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ARTIFACT = b"managed-key artifact\n"
SLSA_V1 = "https://slsa.dev/provenance/v1"


def _doc() -> dict:
    return json.loads(statement(ARTIFACT))


def _repeated_subject() -> bytes:
    # A last-wins parser (json.loads) reads the real subject; the first names another.
    doc = _doc()
    decoy = json.dumps([{"name": "decoy", "digest": {"sha256": "0" * 64}}])
    members = [f'"subject":{decoy}'] + [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in doc.items()]
    return ("{" + ",".join(members) + "}").encode()


def _changed(**changes: object) -> bytes:
    return json.dumps({**_doc(), **changes}).encode()


#: payload -> the verifier's reason (the same with and without --predicate-type).
BAD_STATEMENTS = {
    "repeated-subject": (_repeated_subject, "statement: duplicate JSON key 'subject'"),
    "statement-v0.1": (
        lambda: _changed(_type="https://in-toto.io/Statement/v0.1"),
        "statement: _type must be https://in-toto.io/Statement/v1, "
        "got 'https://in-toto.io/Statement/v0.1'",
    ),
    "unknown-member": (lambda: _changed(note=1), "statement: unknown member(s) ['note']"),
}


@pytest.fixture(scope="module")
def log() -> FakeLog:
    return FakeLog()


@pytest.fixture(scope="module")
def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, log: FakeLog, signer) -> Path:
    root = tmp_path_factory.mktemp("managed")
    (root / "key.pub").write_bytes(pem(signer.public_key()))
    (root / "trusted_root.json").write_bytes(log.trusted_root())
    (root / "artifact").write_bytes(ARTIFACT)
    return root


def _cli(files: Path, bundle: bytes, *extra: str) -> tuple[int, str]:
    (files / "bundle.json").write_bytes(bundle)
    args = ["--bundle", str(files / "bundle.json"), "--key", str(files / "key.pub")]
    args += ["--trusted-root", str(files / "trusted_root.json"), *extra, str(files / "artifact")]
    result = CliRunner().invoke(command, args)
    return result.exit_code, result.stderr.strip()


@pytest.mark.parametrize("name", list(BAD_STATEMENTS))
def test_bad_statement_is_refused_with_the_verifiers_reason(
    files: Path, log: FakeLog, signer, name: str
) -> None:
    make, why = BAD_STATEMENTS[name]
    bundle = encode(dsse_bundle(signer, make(), log))
    assert _cli(files, bundle) == (1, f"verification failed: {why}")
    assert _cli(files, bundle, "--predicate-type", SLSA_V1) == (1, f"verification failed: {why}")
    verifier = BundleVerifier(load_trusted_root(log.trusted_root()))
    with pytest.raises(VerificationError) as caught:
        verifier.verify(bundle, Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key())
    assert caught.value.message == why


def test_predicate_type_option_checks_type_and_schema(files: Path, log: FakeLog, signer) -> None:
    good = encode(dsse_bundle(signer, statement(ARTIFACT), log))
    other = encode(dsse_bundle(signer, _changed(predicateType="https://example.test/x"), log))
    no_schema = encode(dsse_bundle(signer, _changed(predicate={"any": "thing"}), log))
    option = ("--predicate-type", SLSA_V1)
    assert _cli(files, good, *option)[0] == 0
    assert _cli(files, other) == (0, "")  # no --predicate-type: any type, like cosign
    assert _cli(files, other, *option) == (
        1,
        "verification failed: predicateType 'https://example.test/x' not allowed",
    )
    code, err = _cli(files, no_schema, *option)
    assert code == 1 and err.startswith(
        "verification failed: predicate invalid: slsa-provenance-v1"
    )
    assert _cli(files, good, "--predicate-type", "https://example.test/x") == (
        2,
        "usage: no schema for --predicate-type 'https://example.test/x'",
    )


def test_bad_signature_is_the_verifiers_finding(files: Path, log: FakeLog, signer) -> None:
    # The log entry records this (wrong) signature, so the bundle layer is
    # content; the signature check over the PAE is the verifier's alone.
    other = ec.generate_private_key(ec.SECP256R1())
    payload = statement(ARTIFACT)
    wrong = other.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    bundle = encode(dsse_bundle(signer, payload, log, sign=wrong))
    code, err = _cli(files, bundle)
    assert code == 1
    assert err == (
        "verification failed: 0 of 1 required trusted key(s) verified the envelope "
        "(1 signature(s), 1 trusted key(s))"
    )


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["_type", "subject", "predicateType", "extra"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=8))))  # fmt: skip
def test_statement_noise_never_passes(changes: dict[str, object]) -> None:
    # Any change to the statement's members, as the bundle path sees it, is
    # either refused by the verifier or leaves the real values in place.
    log = FakeLog()
    signer = ec.generate_private_key(ec.SECP256R1())
    payload = _changed(**changes)
    bundle = encode(dsse_bundle(signer, payload, log))
    verifier = BundleVerifier(load_trusted_root(log.trusted_root()))
    try:
        result = verifier.verify(
            bundle, Artifact.from_bytes(ARTIFACT), now=NOW, key=signer.public_key()
        )
    except VerificationError:
        return
    assert result.statement is not None
    assert result.statement.statement == json.loads(statement(ARTIFACT))
