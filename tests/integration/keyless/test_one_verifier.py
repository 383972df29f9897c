# SPDX-License-Identifier: Apache-2.0
"""One verdict per keyless bundle, whoever checks it: bulk, ``verify-bundle``, the agent.

Each bundle is signed for real by the local Sigstore stack (Fulcio, CT log,
Rekor) with the same identity, so the Sigstore layer accepts every one of
them. What differs is the signed statement: a repeated member, a predicate
type or predicate the server never issues, an unknown member, another
artifact. Every caller must hand the envelope and the certificate's key to
the one statement verifier and come back with its verdict and its reason.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sigstore.sign import SigningContext

from agent.check import pinned_verifier
from agent.integrity.attestation import KeylessTrust, ServerAttestations
from attestor.cli.verify_bundle import command
from attestor.digests import KeyId
from attestor.keyless import load_trust_config, sign_dsse_bundle
from attestor.revocation.match import RevocationSet
from attestor.services._bulk_checks import (
    Keyless,
    Outcome,
    Signed,
    TrustSnapshot,
    check_item,
    check_keyless,
    judge,
)
from attestor.store.verifications import OurAttestation
from attestor.verify.bundle import BundleVerifier, CertificateIdentity
from attestor.verify.trust import load_trusted_root
from tests.harness.sigstore_stack import SigstoreStack
from tests.unit.agent._integrity_sim import SimServer
from tests.unit.agent.test_integrity_attestation import (
    IMAGE,
    IMAGE_DIGEST,
    Clock,
    infos,
    sim_layers,
)

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"
SLSA_V1 = "https://slsa.dev/provenance/v1"
KEYLESS_ID = KeyId("keyless:" + "c" * 64)
OTHER_SHA256 = hashlib.sha256(b"another layer").hexdigest()


def _members(statement: dict[str, Any]) -> list[str]:
    return [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in statement.items()]


def _repeated_subject(statement: dict[str, Any]) -> bytes:
    # Two "subject" members: a last-wins parser reads the real layer's subject,
    # after a first one naming another layer. Python's json.loads is last-wins.
    decoy = [{"name": "decoy", "digest": {"sha256": OTHER_SHA256}}]
    members = [f'"subject":{json.dumps(decoy)}', *_members(statement)]
    return ("{" + ",".join(members) + "}").encode()


def _with(**changes: Any) -> Callable[[dict[str, Any]], bytes]:
    def make(statement: dict[str, Any]) -> bytes:
        return json.dumps({**statement, **changes}).encode()

    return make


def _without_run_details(statement: dict[str, Any]) -> bytes:
    predicate = {k: v for k, v in statement["predicate"].items() if k != "runDetails"}
    return json.dumps({**statement, "predicate": predicate}).encode()


def _other_subject(statement: dict[str, Any]) -> bytes:
    subject = [{"name": "other", "digest": {"sha256": OTHER_SHA256}}]
    return json.dumps({**statement, "subject": subject}).encode()


#: case -> (statement from the real one, the reason every caller must give; None: valid).
CASES: dict[str, tuple[Callable[[dict[str, Any]], bytes], str | None]] = {
    "issued": (lambda s: json.dumps(s).encode(), None),
    "repeated-subject": (_repeated_subject, "statement: duplicate JSON key 'subject'"),
    "other-predicate-type": (
        _with(predicateType="https://example.test/other/v1"),
        "predicateType 'https://example.test/other/v1' not allowed",
    ),
    "predicate-fails-schema": (
        _without_run_details,
        'predicate invalid: slsa-provenance-v1: $: "runDetails" is a required property',
    ),
    "unknown-member": (_with(comment="unsigned?"), "statement: unknown member(s) ['comment']"),
    "other-subject": (_other_subject, None),  # reason names the layer: filled in below
}


@dataclasses.dataclass(frozen=True)
class Fixture:
    server: SimServer
    layers: list[Any]
    bundles: dict[str, bytes]
    trusted_root: Path


@pytest.fixture(scope="module")
def signed(sigstore_stack: SigstoreStack) -> Fixture:
    trust = load_trust_config("custom", sigstore_stack.client_trust_config_path)
    trust.force_tlog_version = 1  # the mock has no Rekor v2
    context = SigningContext.from_trust_config(trust)
    server = SimServer()
    layers = sim_layers(1)
    (ref,) = server.attest(layers)
    envelope = json.loads(server.envelopes[ref.id])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    token = sigstore_stack.mint_token(IDENTITY, ISSUER)
    bundles = {
        name: json.dumps(sign_dsse_bundle(context, token, make(statement))).encode()
        for name, (make, _) in CASES.items()
    }
    # The agent looks keyless layers up by a keyless key id and fetches the bundle.
    server.refs[layers[0].digest] = [dataclasses.replace(ref, keyid=KEYLESS_ID)]
    return Fixture(server, layers, bundles, sigstore_stack.trusted_root_path)


def _expected(name: str, layer_digest: str) -> str | None:
    if name == "other-subject":
        return f"no subject has sha256 {layer_digest.removeprefix('sha256:')}"
    return CASES[name][1]


def _bulk(f: Fixture, bundle: bytes) -> str | None:
    """Bulk verification of one bundle item, keyless mode; None when verified."""
    layer = f.layers[0].digest
    snapshot = TrustSnapshot(
        verifier=None,  # a keyless-only server has no trusted keys
        revoked_keyids=frozenset(),
        revocations=RevocationSet(),
        fingerprint="test",
        at=datetime.now(UTC),
        keyless=BundleVerifier(load_trusted_root(f.trusted_root)),
    )
    item = {"kind": "bundle", "document": json.loads(bundle), "artifact_digest": layer}
    pending = check_item(item, snapshot)
    assert isinstance(pending, Keyless), pending
    ours = OurAttestation(
        id="att-1",
        status="valid",
        keyid=KEYLESS_ID,
        policy_id="dev",
        policy_version="1",
        layer_digest=layer,
        image_digest=IMAGE_DIGEST,
        issued_at=datetime.now(UTC),
        signer_identity=IDENTITY,
        signer_issuer=ISSUER,
    )
    checked = check_keyless(pending, ours, snapshot)
    outcome = checked if isinstance(checked, Outcome) else None
    if isinstance(checked, Signed):
        outcome = judge(checked, ours, None, RevocationSet())
    assert outcome is not None
    return None if outcome.status == "verified" else outcome.reason


def _cli(f: Fixture, bundle: bytes, tmp_path: Path) -> str | None:
    """``attestor verify-bundle`` with the server's predicate rules; None on exit 0."""
    path = tmp_path / f"{hashlib.sha256(bundle).hexdigest()[:16]}.json"
    path.write_bytes(bundle)
    args = ["--bundle", str(path), "--trusted-root", str(f.trusted_root)]
    args += ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
    args += ["--predicate-type", SLSA_V1, f.layers[0].digest]
    result = CliRunner().invoke(command, args)
    if result.exit_code == 0:
        return None
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    return line.removeprefix("verification failed: ")


def _agent(f: Fixture, bundle: bytes) -> str | None:
    """The agent's verdict on the layer whose attestation is this bundle; None if valid."""
    trust = KeylessTrust(
        verifier=BundleVerifier(load_trusted_root(f.trusted_root)),
        identity=CertificateIdentity(IDENTITY, ISSUER),
        fetch_bundle=lambda _attestation_id: bundle,
        now=lambda: datetime.now(UTC),
    )
    resolver = ServerAttestations(
        f.server, pinned_verifier([f.server.server_key()]), clock=Clock(), keyless=trust
    )
    got = resolver.resolve(
        infos(f.layers)[0], image_name=f"{IMAGE}:latest", image_digest=IMAGE_DIGEST
    )
    if got.status == "valid":
        assert got.manifest is not None
        return None
    assert got.status == "bad-signature", got
    return got.reason


@pytest.mark.parametrize("name", list(CASES))
def test_bulk_cli_and_agent_give_the_verifiers_verdict(
    signed: Fixture, name: str, tmp_path: Path
) -> None:
    bundle = signed.bundles[name]
    expected = _expected(name, signed.layers[0].digest)
    verdicts = {
        "bulk": _bulk(signed, bundle),
        "verify-bundle": _cli(signed, bundle, tmp_path),
        "agent": _agent(signed, bundle),
    }
    assert verdicts == dict.fromkeys(verdicts, expected)


def test_verify_bundle_without_predicate_type_still_checks_the_statement(
    signed: Fixture, tmp_path: Path
) -> None:
    # Without --predicate-type the CLI accepts any predicate (like cosign
    # without --type), but the statement rules are the verifier's all the same.
    path = tmp_path / "bundle.json"
    base = ["--bundle", str(path), "--trusted-root", str(signed.trusted_root)]
    base += ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
    outcomes = {}
    for name in ("issued", "other-predicate-type", "repeated-subject", "unknown-member"):
        path.write_bytes(signed.bundles[name])
        result = CliRunner().invoke(command, [*base, signed.layers[0].digest])
        outcomes[name] = (result.exit_code, result.stderr.strip())
    assert outcomes == {
        "issued": (0, ""),
        "other-predicate-type": (0, ""),
        "repeated-subject": (1, "verification failed: statement: duplicate JSON key 'subject'"),
        "unknown-member": (1, "verification failed: statement: unknown member(s) ['comment']"),
    }
