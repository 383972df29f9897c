# SPDX-License-Identifier: Apache-2.0
"""Keyless signing against a local Sigstore stack, verified by us and by sigstore-js."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.sign import SigningContext

from attestor.errors import ConfigError, UpstreamError, VerificationError
from attestor.keyless import (
    AmbientToken,
    KeylessConfig,
    KeylessSigner,
    dsse_envelope,
    load_trust_config,
    sign_dsse_bundle,
    signing_certificate_pem,
)
from attestor.signing.bundle import bundle_from_envelope
from attestor.statement import ImageInfo, ManifestRef, build_layer_statement, statement_bytes
from attestor.verify import TrustedKey, Verifier
from attestor.verify.bundle import Artifact, CertificateIdentity, verify_bundle
from attestor.verify.trust import load_trusted_root, public_good
from tests.harness.binaries import require
from tests.harness.sigstore_stack import SigstoreStack, interop_modules

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"
VERIFY_JS = Path(__file__).with_name("verify_keyless.mjs")

LAYER = b"layer blob bytes"
LAYER_HEX = hashlib.sha256(LAYER).hexdigest()


def _statement() -> bytes:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    manifest = "sha256:" + hashlib.sha256(b"manifest").hexdigest()
    diff = "sha256:" + hashlib.sha256(b"diff").hexdigest()
    tree = "sha256:" + hashlib.sha256(b"tree").hexdigest()
    statement = build_layer_statement(
        image=ImageInfo(
            name="127.0.0.1:5000/app",
            reference="127.0.0.1:5000/app:1",
            manifest_digest=manifest,
            manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        ),
        layer_index=0,
        layer_digest="sha256:" + LAYER_HEX,
        layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id=diff,
        chain_id=diff,
        history_entry=None,
        parent=None,
        manifest_ref=ManifestRef(sha256=tree, tree_digest=tree, uri="/v1/manifests/x"),
        policy_id="dev",
        policy_version="1",
        builder_id="https://attestor.local/builder/test",
        invocation_id="0b7c7c1e-4f4e-4a8e-9a55-6f7f2a1c0d01",
        started_on=t0,
        finished_on=t0 + timedelta(seconds=1),
    )
    return statement_bytes(statement)


STATEMENT = _statement()


@pytest.fixture(scope="module")
def context(sigstore_stack: SigstoreStack) -> SigningContext:
    trust = load_trust_config("custom", sigstore_stack.client_trust_config_path)
    # The mock has no Rekor v2; a real private deployment may list both.
    trust.force_tlog_version = 1
    return SigningContext.from_trust_config(trust)


@pytest.fixture(scope="module")
def bundle(sigstore_stack: SigstoreStack, context: SigningContext) -> dict[str, Any]:
    return sign_dsse_bundle(context, sigstore_stack.mint_token(IDENTITY, ISSUER), STATEMENT)


@pytest.fixture(scope="module")
def other_bundle(sigstore_stack: SigstoreStack, context: SigningContext) -> dict[str, Any]:
    return sign_dsse_bundle(context, sigstore_stack.mint_token(IDENTITY, ISSUER), STATEMENT)


def _ours(
    stack: SigstoreStack, doc: dict[str, Any], identity: str = IDENTITY, issuer: str = ISSUER
):
    return verify_bundle(
        json.dumps(doc).encode(),
        Artifact.from_bytes(LAYER),
        trust=load_trusted_root(stack.trusted_root_path),
        now=datetime.now(UTC),
        identity=CertificateIdentity(identity, issuer),
    )


@pytest.fixture(scope="module")
def sigstore_js(sigstore_stack: SigstoreStack, tmp_path_factory: pytest.TempPathFactory):
    node = require("node")
    modules = interop_modules()
    workdir = tmp_path_factory.mktemp("keyless-js")

    def run(doc: dict[str, Any], identity: str = IDENTITY, issuer: str = ISSUER):
        path = workdir / f"{hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]}.json"
        path.write_text(json.dumps(doc))
        argv = [node, str(VERIFY_JS), str(path), str(sigstore_stack.trusted_root_path)]
        return subprocess.run(
            [*argv, identity, issuer, str(modules)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def test_bundle_carries_a_fulcio_certificate_and_a_rekor_v1_entry(bundle) -> None:
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    material = bundle["verificationMaterial"]
    cert = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [IDENTITY]
    (entry,) = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert entry["inclusionPromise"]["signedEntryTimestamp"]
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    # Rekor's canonical dsse v0.0.1 shape, not the proposed entry.
    assert sorted(body["spec"]) == ["envelopeHash", "payloadHash", "signatures"]
    assert body["spec"]["payloadHash"]["value"] == hashlib.sha256(STATEMENT).hexdigest()
    assert base64.b64decode(bundle["dsseEnvelope"]["payload"]) == STATEMENT


def test_verifies_with_our_verifier(sigstore_stack, bundle) -> None:
    result = _ours(sigstore_stack, bundle)
    assert (result.signer, result.content) == ("keyless", "dsse")
    assert (result.identity, result.issuer) == (IDENTITY, ISSUER)
    assert result.payload == STATEMENT
    assert result.predicate_type == "https://slsa.dev/provenance/v1"
    (entry,) = result.tlog_entries
    assert (entry.kind, entry.version) == ("dsse", "0.0.1")
    assert entry.integrated_time is not None


def test_another_trust_root_rejects_it(bundle) -> None:
    with pytest.raises(VerificationError):
        verify_bundle(
            json.dumps(bundle).encode(),
            Artifact.from_bytes(LAYER),
            trust=public_good("staging"),
            now=datetime.now(UTC),
            identity=CertificateIdentity(IDENTITY, ISSUER),
        )


def test_verifies_with_sigstore_js(sigstore_js, bundle) -> None:
    res = sigstore_js(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"verified: {IDENTITY}"


def test_envelope_alone_verifies_with_the_certificate_key(bundle) -> None:
    # What cosign verify-blob-attestation does with --certificate: the PAE
    # signature with the certificate's key, whatever the keyid.
    envelope = dsse_envelope(bundle)
    assert [s.keyid for s in envelope.signatures] == [""]
    cert = x509.load_pem_x509_certificate(signing_certificate_pem(bundle))
    pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verified = Verifier(keys=[TrustedKey.from_pem(pem)]).verify_envelope(
        envelope.to_json(), artifact_digest="sha256:" + LAYER_HEX
    )
    assert verified.payload_sha256 == hashlib.sha256(STATEMENT).hexdigest()
    assert verified.matched_subject is not None
    assert verified.matched_subject.sha256 == LAYER_HEX


def test_envelope_alone_verifies_with_sigstore_js_and_the_certificate_key(bundle, tmp_path) -> None:
    # An independent check of the same claim: the envelope, wrapped as a
    # key-based bundle, verifies in @sigstore/verify with the certificate's key.
    node, modules = require("node"), interop_modules()
    cert = x509.load_pem_x509_certificate(signing_certificate_pem(bundle))
    key_pem = tmp_path / "cert-key.pem"
    key_pem.write_bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    wrapped = tmp_path / "envelope-bundle.json"
    wrapped.write_text(json.dumps(bundle_from_envelope(dsse_envelope(bundle), keyid="")))
    script = modules / "verify_bundle.mjs"
    res = subprocess.run(
        [node, str(script), str(wrapped), str(key_pem)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr


def _flip_payload(doc: dict[str, Any], _other: dict[str, Any]) -> None:
    statement = json.loads(STATEMENT)
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _flip_signature(doc: dict[str, Any], _other: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-3] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _flip_log_time(doc: dict[str, Any], _other: dict[str, Any]) -> None:
    # Later, not earlier: still inside the certificate's validity, so only the
    # signed entry timestamp can catch it.
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)


def _forge_certificate(doc: dict[str, Any], _other: dict[str, Any]) -> None:
    # A self-made certificate with the right SAN for a key that did not sign.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name.from_rfc4514_string("CN=sigstore,O=sigstore.mock"))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(IDENTITY)]), True
        )
        .sign(key, hashes.SHA256())
    )
    raw = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    doc["verificationMaterial"]["certificate"]["rawBytes"] = raw


def _other_fulcio_certificate(doc: dict[str, Any], other: dict[str, Any]) -> None:
    # A genuine certificate from the same Fulcio, same identity, another key.
    cert = other["verificationMaterial"]["certificate"]
    doc["verificationMaterial"]["certificate"] = copy.deepcopy(cert)


def _other_log_entry(doc: dict[str, Any], other: dict[str, Any]) -> None:
    # A genuine log entry, for another signature.
    entries = other["verificationMaterial"]["tlogEntries"]
    doc["verificationMaterial"]["tlogEntries"] = copy.deepcopy(entries)


#: How to tamper, and the error codes sigstore-js may report (the right reasons).
TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any], dict[str, Any]], None], tuple[str, ...]]] = {
    "payload": (_flip_payload, ("TLOG_BODY_ERROR",)),
    "signature": (_flip_signature, ("TLOG_BODY_ERROR",)),
    "log-time": (_flip_log_time, ("TLOG_INCLUSION_PROMISE_ERROR",)),
    "forged-certificate": (_forge_certificate, ("CERTIFICATE_ERROR",)),
    # The other certificate may be issued a second after this entry was logged,
    # so it may also fail as "not valid at the log time".
    "other-certificate": (_other_fulcio_certificate, ("SIGNATURE_ERROR", "CERTIFICATE_ERROR")),
    "other-log-entry": (_other_log_entry, ("TLOG_BODY_ERROR",)),
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_tampered_bundle_fails_both(sigstore_stack, sigstore_js, bundle, other_bundle, how) -> None:
    tamper, js_codes = TAMPERINGS[how]
    doc = copy.deepcopy(bundle)
    tamper(doc, other_bundle)
    with pytest.raises(VerificationError):
        _ours(sigstore_stack, doc)
    res = sigstore_js(doc)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stderr.startswith(tuple(f"rejected: {c}: " for c in js_codes)), res.stderr


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        (IDENTITY + "-other", ISSUER),
        (IDENTITY, "https://oidc.other.test"),
        (IDENTITY.removesuffix("-server"), ISSUER),
    ],
    ids=["identity", "issuer", "identity-prefix"],
)
def test_wrong_identity_or_issuer_fails(sigstore_stack, sigstore_js, bundle, identity, issuer):
    with pytest.raises(VerificationError):
        _ours(sigstore_stack, bundle, identity, issuer)
    assert sigstore_js(bundle, identity, issuer).returncode == 1


def test_token_not_from_the_trusted_issuer_is_refused(sigstore_stack, context) -> None:
    # Signed by a key the stack's Fulcio does not trust (its JWKS stand-in).
    now = datetime.now(UTC)
    forged = jwt.encode(
        {
            "iss": ISSUER,
            "sub": IDENTITY,
            "aud": "sigstore",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        },
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
    )
    with pytest.raises(UpstreamError, match="keyless signing failed: .*401") as excinfo:
        sign_dsse_bundle(context, forged, STATEMENT)
    assert forged not in str(excinfo.value)


def test_expired_token_is_a_config_error(sigstore_stack, context) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    token = sigstore_stack.mint_token(IDENTITY, ISSUER, issued_at=old)
    with pytest.raises(ConfigError, match="identity token unusable") as excinfo:
        sign_dsse_bundle(context, token, STATEMENT)
    assert "\n" not in str(excinfo.value)
    assert token not in str(excinfo.value)


def test_keyless_signer_rereads_the_token_file(sigstore_stack, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(sigstore_stack.mint_token(IDENTITY, ISSUER))
    signer = KeylessSigner(
        KeylessConfig(
            instance="custom",
            trust_config=sigstore_stack.client_trust_config_path,
            token_file=token_file,
            force_tlog_version=1,
        )
    )
    first = signer.sign_statement(STATEMENT)
    other = IDENTITY.replace("attestor-server", "rotated")
    token_file.write_text(sigstore_stack.mint_token(other, ISSUER))
    second = signer.sign_statement(STATEMENT)
    docs = [json.loads(b) if isinstance(b, str | bytes) else b for b in (first, second)]
    assert _ours(sigstore_stack, docs[0]).identity == IDENTITY
    assert _ours(sigstore_stack, docs[1], identity=other).identity == other


GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture
def github_oidc(sigstore_stack: SigstoreStack, monkeypatch) -> Iterator[list[str]]:
    """A stand-in for GitHub Actions' OIDC token endpoint, and the env that points at it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(f"{self.headers.get('Authorization')} {self.path}")
            token = sigstore_stack.mint_token(WORKFLOW, GITHUB_ISSUER)
            body = json.dumps({"value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    url = f"http://127.0.0.1:{server.server_address[1]}/token?api-version=2.0"
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url)
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_ambient_ci_credential_signs(sigstore_stack, context, github_oidc) -> None:
    doc = sign_dsse_bundle(context, AmbientToken().token(), STATEMENT)
    (request,) = github_oidc
    assert request.startswith("bearer request-token /token?")
    assert "audience=sigstore" in request
    result = _ours(sigstore_stack, doc, WORKFLOW, GITHUB_ISSUER)
    assert (result.identity, result.issuer) == (WORKFLOW, GITHUB_ISSUER)
