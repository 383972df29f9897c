# SPDX-License-Identifier: Apache-2.0
"""What each wrapper of :mod:`attestor.sigstore_internals` returns on real bundles.

Each test pins the behaviour our verifiers rely on (types, values, which
errors), on conformance bundles and trust roots from tests/assets, so that a
sigstore-python release that changes one of its internals fails here, with
the wrapper's name, before it shows up as a wrong verdict elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rekor_types
from cryptography.x509 import load_der_x509_certificate
from rfc3161_client import decode_timestamp_response
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity, VerificationPolicy
from sigstore_models.bundle.v1 import Bundle as BundleModel
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.rekor import v1 as rekor_v1
from sigstore_models.trustroot import v1 as trustroot_v1

from attestor import sigstore_internals as si

IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
#: The production Rekor v1 log (rekor.sigstore.dev) id.
REKOR_PRODUCTION = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"


@pytest.fixture(scope="module")
def cases(asset: Callable[[str], Path]) -> Path:
    return asset("conformance/bundle-verify")


def _doc(cases: Path, case: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((cases / case / "bundle.sigstore.json").read_bytes())
    return doc


def _bundle(cases: Path, case: str) -> Bundle:
    return Bundle.from_json((cases / case / "bundle.sigstore.json").read_bytes())


def _root(cases: Path, case: str) -> TrustedRoot:
    model = trustroot_v1.TrustedRoot.from_json((cases / case / "trusted_root.json").read_bytes())
    return si.trusted_root_from_model(model)


@pytest.fixture(scope="module")
def production() -> TrustedRoot:
    model = trustroot_v1.TrustedRoot.from_json(
        si.embedded_trust_file("production", "trusted_root.json")
    )
    return si.trusted_root_from_model(model)


# -- embedded trust files and trust-root models ------------------------------------


@pytest.mark.parametrize("instance", ["production", "staging"])
def test_embedded_trust_file_reads_both_shipped_files(instance: Any) -> None:
    root = trustroot_v1.TrustedRoot.from_json(si.embedded_trust_file(instance, "trusted_root.json"))
    assert root.media_type == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert root.tlogs and root.ctlogs and root.certificate_authorities
    config = trustroot_v1.SigningConfig.from_json(
        si.embedded_trust_file(instance, "signing_config.v0.2.json")
    )
    assert config.media_type == "application/vnd.dev.sigstore.signingconfig.v0.2+json"
    assert config.ca_urls and config.rekor_tlog_urls


def test_embedded_instances_are_the_two_public_good_ones() -> None:
    assert sorted(si.EMBEDDED_INSTANCES) == ["production", "staging"]
    with pytest.raises(KeyError):
        si.embedded_trust_file("nonesuch", "trusted_root.json")  # type: ignore[arg-type]


def test_trusted_root_model_is_the_live_model(production: TrustedRoot) -> None:
    model = si.trusted_root_model(production)
    assert isinstance(model, trustroot_v1.TrustedRoot)
    # Not a copy: closed_interval_root deep-copies it before changing it.
    assert si.trusted_root_model(production) is model
    log_ids = [t.log_id.key_id.hex() for t in model.tlogs if t.log_id is not None]
    assert REKOR_PRODUCTION in log_ids
    assert all(len(c.log_id.key_id) == 32 for c in model.ctlogs if c.log_id is not None)
    first = model.certificate_authorities[0]
    assert first.valid_for is not None and first.valid_for.start.tzinfo is not None
    assert isinstance(first.cert_chain.certificates[0].raw_bytes, bytes)


def test_trusted_root_from_model_round_trips(production: TrustedRoot) -> None:
    model = si.trusted_root_model(production).model_copy(deep=True)
    root = si.trusted_root_from_model(model)
    assert isinstance(root, TrustedRoot)
    assert si.trusted_root_model(root) is model
    assert root.get_fulcio_certs() == production.get_fulcio_certs()


def test_trusted_root_from_model_refuses_an_unknown_media_type(production: TrustedRoot) -> None:
    model = si.trusted_root_model(production).model_copy(update={"media_type": "x"})
    with pytest.raises(SigstoreError, match="unsupported trusted root format"):
        si.trusted_root_from_model(model)


def test_client_trust_config_from_model() -> None:
    model = trustroot_v1.ClientTrustConfig(
        media_type="application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        trusted_root=trustroot_v1.TrustedRoot.from_json(
            si.embedded_trust_file("staging", "trusted_root.json")
        ),
        signing_config=trustroot_v1.SigningConfig.from_json(
            si.embedded_trust_file("staging", "signing_config.v0.2.json")
        ),
    )
    config = si.client_trust_config_from_model(model)
    assert isinstance(config, ClientTrustConfig)
    assert isinstance(config.trusted_root, TrustedRoot)
    # KeylessSigner sets this public attribute before building the signing context.
    assert config.force_tlog_version is None
    config.force_tlog_version = 1
    assert config.signing_config.get_tlogs()


# -- bundles and log entries ------------------------------------------------------------


@pytest.mark.parametrize("case", ["happy-path-v0.1", "happy-path-v0.3", "rekor2-dsse-happy-path"])
def test_bundle_media_type_is_as_written(cases: Path, case: str) -> None:
    assert si.bundle_media_type(_bundle(cases, case)) == _doc(cases, case)["mediaType"]


def test_bundle_dsse_envelope_holds_the_decoded_envelope(cases: Path) -> None:
    case = "rekor2-dsse-happy-path"
    written = _doc(cases, case)["dsseEnvelope"]
    envelope = si.bundle_dsse_envelope(_bundle(cases, case))
    assert isinstance(envelope, si.EnvelopeModel)
    assert envelope.payload == base64.b64decode(written["payload"])
    assert envelope.payload_type == written["payloadType"] == "application/vnd.in-toto+json"
    assert [s.sig for s in envelope.signatures] == [
        base64.b64decode(s["sig"]) for s in written["signatures"]
    ]


def test_bundle_dsse_envelope_is_none_for_a_message_signature(cases: Path) -> None:
    assert si.bundle_dsse_envelope(_bundle(cases, "happy-path-v0.3")) is None


def test_bundle_certificate_chain(cases: Path) -> None:
    written = _doc(cases, "happy-path-v0.1")["verificationMaterial"]["x509CertificateChain"]
    chain = si.bundle_certificate_chain(_bundle(cases, "happy-path-v0.1"))
    assert chain == [base64.b64decode(c["rawBytes"]) for c in written["certificates"]]
    # v0.3 bundles carry the leaf alone, as "certificate".
    assert si.bundle_certificate_chain(_bundle(cases, "happy-path-v0.3")) == []


@pytest.mark.parametrize("case", ["happy-path-v0.1", "rekor2-happy-path"])
def test_log_entry_model_fields(cases: Path, case: str) -> None:
    written = _doc(cases, case)["verificationMaterial"]["tlogEntries"][0]
    entry = si.log_entry_model(_bundle(cases, case).log_entry)
    assert isinstance(entry, rekor_v1.TransparencyLogEntry)
    assert entry.log_index == int(written["logIndex"])
    assert entry.log_id.key_id == base64.b64decode(written["logId"]["keyId"])
    assert (entry.kind_version.kind, entry.kind_version.version) == (
        written["kindVersion"]["kind"],
        written["kindVersion"]["version"],
    )
    assert entry.canonicalized_body == base64.b64decode(written["canonicalizedBody"])
    if "inclusionPromise" in written:
        assert entry.integrated_time == int(written["integratedTime"])
        assert entry.inclusion_promise is not None
    else:
        # Rekor v2: no SET, and no integrated time to trust.
        assert entry.inclusion_promise is None


def test_verify_log_entry_proofs_accepts_a_good_entry(cases: Path, production) -> None:
    for case in ("happy-path-v0.1", "happy-path-v0.3"):
        entry = si.log_entry_model(_bundle(cases, case).log_entry)
        assert si.verify_log_entry_proofs(entry, production) is None
    case = "rekor2-happy-path"
    entry = si.log_entry_model(_bundle(cases, case).log_entry)
    assert si.verify_log_entry_proofs(entry, _root(cases, case)) is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("invalid-checkpoint-signature_fail", "checkpoint: invalid signature"),
        ("invalid-inclusion-proof_fail", "inclusion proof"),
    ],
)
def test_verify_log_entry_proofs_refuses_a_bad_entry(
    cases: Path, production, case: str, message: str
) -> None:
    # Parsed as the managed-key path parses it: sigstore's Bundle refuses this one.
    raw = (cases / case / "bundle.sigstore.json").read_bytes()
    entry = BundleModel.from_json(raw).verification_material.tlog_entries[0]
    with pytest.raises(SigstoreError, match=message):
        si.verify_log_entry_proofs(entry, production)


def test_verify_log_entry_proofs_checks_the_set(cases: Path, production) -> None:
    entry = si.log_entry_model(_bundle(cases, "happy-path-v0.1").log_entry).model_copy(deep=True)
    assert entry.inclusion_promise is not None
    entry.integrated_time += 1  # the SET signs the integrated time
    with pytest.raises(SigstoreError):
        si.verify_log_entry_proofs(entry, production)


def test_verify_log_entry_proofs_needs_a_log_key_in_the_root(cases: Path, production) -> None:
    model = si.trusted_root_model(production).model_copy(update={"tlogs": []})
    entry = si.log_entry_model(_bundle(cases, "happy-path-v0.3").log_entry)
    with pytest.raises(SigstoreError, match="Rekor keys"):
        si.verify_log_entry_proofs(entry, si.trusted_root_from_model(model))


# -- certificates and entry bodies -------------------------------------------------------


def test_cert_is_root_ca(cases: Path, production) -> None:
    fulcio = production.get_fulcio_certs()
    roots = [c for c in fulcio if si.cert_is_root_ca(c)]
    assert roots and len(roots) < len(fulcio)  # production has intermediates too
    assert si.cert_is_root_ca(_bundle(cases, "happy-path-v0.3").signing_certificate) is False
    written = _doc(cases, "bundle-with-root-cert_fail")["verificationMaterial"]
    chain = [
        base64.b64decode(c["rawBytes"]) for c in written["x509CertificateChain"]["certificates"]
    ]
    assert [si.cert_is_root_ca(load_der_x509_certificate(d)) for d in chain] == [False, True, False]


def test_hashedrekord_from_parts_equals_the_logged_body(cases: Path) -> None:
    bundle = _bundle(cases, "happy-path-v0.3")
    digest = hashlib.sha256((cases / "a.txt").read_bytes()).digest()
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    expected = si.hashedrekord_from_parts(bundle.signing_certificate, bundle.signature, hashed)
    assert isinstance(expected, rekor_types.Hashedrekord)
    logged = rekor_types.Hashedrekord.model_validate_json(
        si.log_entry_model(bundle.log_entry).canonicalized_body
    )
    assert expected == logged
    other = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(b"x").digest())
    assert si.hashedrekord_from_parts(bundle.signing_certificate, bundle.signature, other) != logged


def _with_logged_signature(cases: Path, case: str) -> Bundle:
    """The conformance bundle with its envelope signature set to the one its entry logs."""
    doc = _doc(cases, case)
    body = json.loads(
        base64.b64decode(doc["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
    )
    doc["dsseEnvelope"]["signatures"] = [{"sig": body["spec"]["signatures"][0]["signature"]}]
    return Bundle.from_json(json.dumps(doc))


def test_validate_dsse_v001_entry_body(cases: Path) -> None:
    assert (
        si.validate_dsse_v001_entry_body(_with_logged_signature(cases, "dsse-invalid-sig_fail"))
        is None
    )
    with pytest.raises(SigstoreVerificationError, match="signatures do not match"):
        si.validate_dsse_v001_entry_body(_bundle(cases, "dsse-invalid-sig_fail"))
    with pytest.raises(SigstoreVerificationError, match="payload hash does not match"):
        si.validate_dsse_v001_entry_body(_bundle(cases, "dsse-mismatch-envelope_fail"))


def test_validate_hashedrekord_v002_dsse_entry_body(cases: Path) -> None:
    assert (
        si.validate_hashedrekord_v002_dsse_entry_body(_bundle(cases, "rekor2-dsse-happy-path"))
        is None
    )
    for case in ("rekor2-dsse-mismatch-sig_fail", "rekor2-dsse-invalid-sig_fail"):
        with pytest.raises(SigstoreVerificationError, match="inconsistent with other materials"):
            si.validate_hashedrekord_v002_dsse_entry_body(_bundle(cases, case))


# -- ExtensibleVerifier -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "_establish_time",
        "_verify_common_signing_cert",
        "_verify_timestamp_authority",
        "_verify_signed_timestamp",
    ],
)
def test_sigstore_verifier_still_has_the_private_steps(name: str) -> None:
    assert callable(getattr(Verifier, name, None)), (
        f"sigstore-python's Verifier has no {name} any more: ExtensibleVerifier's hooks "
        "would silently stop being called"
    )


class _Recording(si.ExtensibleVerifier):
    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        super().__init__(trusted_root=trusted_root)
        self.calls: list[str] = []

    def establish_time(self, bundle: Bundle) -> list[si.TimestampVerificationResult]:
        self.calls.append("establish_time")
        return super().establish_time(bundle)

    def verify_signing_cert(self, bundle: Bundle, policy: VerificationPolicy) -> None:
        self.calls.append("verify_signing_cert")
        super().verify_signing_cert(bundle, policy)


def test_sigstore_calls_the_overridden_hooks(cases: Path, production) -> None:
    verifier = _Recording(trusted_root=production)
    assert verifier.unusable is None
    digest = hashlib.sha256((cases / "a.txt").read_bytes()).digest()
    verifier.verify_artifact(
        Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest),
        _bundle(cases, "happy-path-v0.3"),
        Identity(identity=IDENTITY, issuer=ISSUER),
    )
    # sigstore's verify_artifact -> _verify_common_signing_cert -> _establish_time.
    assert verifier.calls == ["verify_signing_cert", "establish_time"]


def test_establish_time_gives_the_integrated_time(cases: Path, production) -> None:
    bundle = _bundle(cases, "happy-path-v0.1")
    written = _doc(cases, "happy-path-v0.1")["verificationMaterial"]["tlogEntries"][0]
    times = si.ExtensibleVerifier(trusted_root=production).establish_time(bundle)
    assert times == [
        si.TimestampVerificationResult(
            source=si.TimestampSource.TRANSPARENCY_SERVICE,
            time=datetime.fromtimestamp(int(written["integratedTime"]), tz=UTC),
        )
    ]


def test_verify_timestamp_authority_and_signed_timestamp(cases: Path) -> None:
    case = "rekor2-happy-path"
    bundle = _bundle(cases, case)
    verifier = si.ExtensibleVerifier(trusted_root=_root(cases, case))
    assert verifier.unusable is None
    results = verifier.verify_timestamp_authority(bundle)
    assert len(results) == 1
    assert results[0].source is si.TimestampSource.TIMESTAMP_AUTHORITY
    assert results[0].time.tzinfo is not None
    raw = _doc(cases, case)["verificationMaterial"]["timestampVerificationData"]
    response = decode_timestamp_response(
        base64.b64decode(raw["rfc3161Timestamps"][0]["signedTimestamp"])
    )
    one = verifier.verify_signed_timestamp(response, bundle.signature)
    assert one == results[0]
    # The imprint covers the signature: another message does not verify.
    assert verifier.verify_signed_timestamp(response, bundle.signature + b"x") is None


def test_a_root_without_logs_is_unusable_not_refused(production: TrustedRoot) -> None:
    model = si.trusted_root_model(production).model_copy(update={"tlogs": []})
    root = si.trusted_root_from_model(model)
    with pytest.raises(SigstoreError):
        Verifier(trusted_root=root)
    verifier = si.ExtensibleVerifier(trusted_root=root)
    assert verifier.unusable == "trusted root contains no transparency log instances"
    assert verifier.trusted_root is root


def test_trusted_root_is_the_one_given(production: TrustedRoot) -> None:
    assert si.ExtensibleVerifier(trusted_root=production).trusted_root is production


def test_timestamp_source_members() -> None:
    assert {s.name for s in si.TimestampSource} == {"TIMESTAMP_AUTHORITY", "TRANSPARENCY_SERVICE"}
