# SPDX-License-Identifier: Apache-2.0
"""Fuzz the bundle parser and verifier: every malformed or altered bundle is a clean rejection."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestor.errors import VerificationError
from attestor.verify.bundle import Artifact, BundleLimits, BundleVerifier, CertificateIdentity
from attestor.verify.trust import load_trusted_root, public_good
from tests.unit.verify.test_bundle_support import (
    FakeLog,
    dsse_bundle,
    encode,
    message_bundle,
    statement,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ARTIFACT = b"fuzzed artifact\n"
LOG = FakeLog()
SIGNER = ec.generate_private_key(ec.SECP256R1())
VERIFIER = BundleVerifier(load_trusted_root(LOG.trusted_root()))
IDENTITY = CertificateIdentity(identity="a@example.com", issuer="https://issuer.example")
GOOD = {
    "message": message_bundle(SIGNER, ARTIFACT, LOG),
    "dsse": dsse_bundle(SIGNER, statement(ARTIFACT), LOG),
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Members whose absence is valid (protobuf-JSON null == absent): the signature
# still covers the digest; the entry still stands on its inclusion proof.
_OPTIONAL = ("messageDigest", "inclusionPromise")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "=", "AAAA", "!!!!", "0", "-1", "18446744073709551616", "\u2014"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _rejects(raw: bytes, **kwargs: Any) -> None:
    with pytest.raises(VerificationError):
        VERIFIER.verify(raw, Artifact.from_bytes(ARTIFACT), now=NOW, **kwargs)


def test_good_bundles_verify() -> None:
    # The baseline the fuzzers mutate must verify as what it is, or a rejection
    # below could come from a broken fixture rather than from the mutation.
    spki = SIGNER.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for content, bundle in GOOD.items():
        result = VERIFIER.verify(
            encode(bundle), Artifact.from_bytes(ARTIFACT), now=NOW, key=SIGNER.public_key()
        )
        assert (result.signer, result.content) == ("key", content)
        assert result.key_id == hashlib.sha256(spki).hexdigest()
        assert result.artifact_sha256 == hashlib.sha256(ARTIFACT).hexdigest()
        assert (result.identity, result.issuer) == (None, None)
        assert len(result.tlog_entries) == 1


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_rejected(raw: bytes) -> None:
    _rejects(raw, key=SIGNER.public_key())
    _rejects(raw, identity=IDENTITY)


@FUZZ
@given(json_values)
def test_random_json_rejected(value: Any) -> None:
    raw = json.dumps(value).encode()
    _rejects(raw, key=SIGNER.public_key())
    _rejects(raw, identity=IDENTITY)


@FUZZ
@given(st.sampled_from(sorted(GOOD)), st.data(), json_values)
def test_mutated_bundle_never_passes(kind: str, data: st.DataObject, value: Any) -> None:
    doc = copy.deepcopy(GOOD[kind])
    # hint and keyid are unauthenticated hints; changing them changes nothing.
    paths = [p for p in _paths(doc) if p[-1] not in ("hint", "keyid")]
    path = data.draw(st.sampled_from(paths))
    if _get(doc, path) == value or (path[-1] in _OPTIONAL and value is None):
        return  # unchanged, or protobuf-JSON null == absent for an optional member
    parent = _get(doc, path[:-1])
    parent[path[-1]] = value
    _rejects(encode(doc), key=SIGNER.public_key())


@FUZZ
@given(st.sampled_from(sorted(GOOD)), st.data())
def test_deleted_member_never_passes(kind: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(GOOD[kind])
    paths = [p for p in _paths(doc) if isinstance(p[-1], str) and p[-1] not in ("hint", "keyid")]
    path = data.draw(st.sampled_from(paths))
    del _get(doc, path[:-1])[path[-1]]
    if path[-1] in _OPTIONAL:
        return
    _rejects(encode(doc), key=SIGNER.public_key())


def test_huge_bundle_rejected_before_parsing() -> None:
    small = BundleVerifier(
        load_trusted_root(LOG.trusted_root()), limits=BundleLimits(max_bundle_bytes=1024)
    )
    doc = copy.deepcopy(GOOD["message"])
    doc["messageSignature"]["signature"] = "A" * 4096
    with pytest.raises(VerificationError, match="over the cap"):
        small.verify(encode(doc), Artifact.from_bytes(ARTIFACT), now=NOW, key=SIGNER.public_key())


def test_deeply_nested_json_rejected() -> None:
    _rejects(b"[" * 100_000 + b"]" * 100_000, key=SIGNER.public_key())


def test_too_many_log_entries_rejected() -> None:
    doc = copy.deepcopy(GOOD["message"])
    doc["verificationMaterial"]["tlogEntries"] *= 9
    with pytest.raises(VerificationError, match="too many"):
        VERIFIER.verify(
            encode(doc), Artifact.from_bytes(ARTIFACT), now=NOW, key=SIGNER.public_key()
        )


_KEYLESS = "conformance/bundle-verify/happy-path-v0.3/bundle.sigstore.json"
_BEACON = CertificateIdentity(
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    "https://token.actions.githubusercontent.com",
)


@pytest.fixture(scope="module")
def keyless(
    asset: Callable[[str], Path],
) -> tuple[BundleVerifier, dict[str, Any], Artifact]:
    verifier = BundleVerifier(public_good("production"))
    artifact = Artifact.from_bytes(asset("conformance/bundle-verify/a.txt").read_bytes())
    doc = json.loads(asset(_KEYLESS).read_bytes())
    # The unmutated bundle verifies as the beacon's, so each rejection below is
    # the mutation's doing.
    result = verifier.verify(encode(doc), artifact, now=NOW, identity=_BEACON)
    assert (result.signer, result.content) == ("keyless", "message")
    assert (result.identity, result.issuer) == (_BEACON.identity, _BEACON.issuer)
    assert result.artifact_sha256 == artifact.sha256
    return verifier, doc, artifact


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data(), json_values)
def test_mutated_keyless_bundle_never_passes(keyless, data: st.DataObject, value: Any) -> None:
    verifier, good, artifact = keyless
    doc = copy.deepcopy(good)
    path = data.draw(st.sampled_from(_paths(doc)))
    if _get(doc, path) == value or (path[-1] in _OPTIONAL and value is None):
        return
    _get(doc, path[:-1])[path[-1]] = value
    with pytest.raises(VerificationError):
        verifier.verify(encode(doc), artifact, now=NOW, identity=_BEACON)
