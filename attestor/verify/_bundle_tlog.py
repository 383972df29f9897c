# SPDX-License-Identifier: Apache-2.0
"""Transparency-log entries of key-signed ("managed key") bundles.

sigstore-python verifies log entries only inside its certificate flow, so for
key-signed bundles we drive its entry checks ourselves:

* the Merkle inclusion proof, the signed checkpoint and the SET are verified by
  sigstore-python's log entry checks against the trusted root's Rekor keys
  (RFC 6962 / signed-note code we would otherwise duplicate), an internal
  reached through :func:`attestor.sigstore_internals.verify_log_entry_proofs`;
* the canonicalized body must describe *this* signature, key and artifact
  (CVE-2022-36056 class): that comparison is written here by hand because
  sigstore-python only implements it for certificates.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore_models.rekor import v1 as rekor_v1
from sigstore_models.rekor.v2 import entry as rekor_v2_entry

from attestor.errors import VerificationError
from attestor.sigstore_internals import verify_log_entry_proofs
from attestor.verify._crypto import PublicKey
from attestor.verify._sigstore_keyless import tlog_for_entry

__all__ = ["SignedContent", "TlogEntryInfo", "verify_tlog_entry"]


@dataclass(frozen=True)
class TlogEntryInfo:
    """What a verified transparency-log entry proved."""

    log_id: str
    log_index: int
    kind: str
    version: str
    #: Rekor v1 integrated time, covered by a verified SET; None for Rekor v2.
    integrated_time: datetime | None


@dataclass(frozen=True)
class SignedContent:
    """The signed thing a log entry must describe."""

    signature: bytes
    #: sha256 of the artifact (message signatures) or of the DSSE PAE.
    digest: bytes
    #: DSSE only: the payload and the exact envelope signatures.
    payload: bytes | None = None
    dsse_signatures: tuple[bytes, ...] = ()


def verify_tlog_entry(
    inner: rekor_v1.TransparencyLogEntry,
    *,
    root: TrustedRoot,
    key: PublicKey,
    content: SignedContent,
    require_promise: bool,
) -> TlogEntryInfo:
    """Verify one log entry of a key-signed bundle.

    Raises:
        VerificationError: if the proof, checkpoint, SET or body does not verify,
            or the log is not one of the trusted root's.
    """
    log_id = inner.log_id.key_id
    tlog = tlog_for_entry(root, log_id)
    if tlog is None:
        raise VerificationError(f"log {log_id.hex()} is not a log of the trusted root")
    if require_promise and inner.inclusion_promise is None:
        raise VerificationError("v0.1 bundle entry has no inclusion promise")
    if inner.inclusion_promise is not None and not inner.integrated_time:
        # sigstore-python would skip such a SET unverified; a present SET must verify.
        raise VerificationError("log entry has an inclusion promise but no integrated time")
    try:
        verify_log_entry_proofs(inner, root)
    except (SigstoreError, ValueError) as e:
        raise VerificationError(f"invalid log entry: {e}") from None
    integrated: datetime | None = None
    if inner.integrated_time and inner.inclusion_promise is not None:
        integrated = datetime.fromtimestamp(inner.integrated_time, tz=UTC)
        valid_for = tlog.public_key.valid_for
        # TimeRange is a closed interval (protobuf-specs).
        if valid_for is not None and (
            integrated < valid_for.start
            or (valid_for.end is not None and integrated > valid_for.end)
        ):
            raise VerificationError(
                f"log key not valid at integrated time {integrated.isoformat()}"
            )
    _check_body(inner, key, content)
    return TlogEntryInfo(
        log_id=log_id.hex(),
        log_index=inner.log_index,
        kind=inner.kind_version.kind,
        version=inner.kind_version.version,
        integrated_time=integrated,
    )


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_key_matches(pem_b64: Any, key: PublicKey) -> bool:
    pem = base64.b64decode(pem_b64, validate=True)
    logged = serialization.load_pem_public_key(pem)
    return bool(
        logged.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == _spki(key)
    )


def _check_body(
    inner: rekor_v1.TransparencyLogEntry, key: PublicKey, content: SignedContent
) -> None:
    kind = (inner.kind_version.kind, inner.kind_version.version)
    try:
        if kind == ("hashedrekord", "0.0.2"):
            ok = _hashedrekord_v2(inner.canonicalized_body, key, content)
        else:
            body = json.loads(inner.canonicalized_body)
            if (body.get("kind"), body.get("apiVersion")) != kind:
                raise VerificationError("log entry body kind differs from its kindVersion")
            spec = body["spec"]
            if kind == ("hashedrekord", "0.0.1"):
                ok = _hashedrekord_v1(spec, key, content)
            elif kind == ("dsse", "0.0.1"):
                ok = _dsse_v1(spec, key, content)
            elif kind == ("intoto", "0.0.2"):
                ok = _intoto_v2(spec["content"], key, content)
            else:
                raise VerificationError(f"unsupported log entry kind {kind[0]}/{kind[1]}")
    except VerificationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as e:
        raise VerificationError(f"malformed log entry body: {str(e)[:200]}") from None
    if not ok:
        raise VerificationError("transparency log entry is inconsistent with the bundle")


def _hashedrekord_v1(spec: Any, key: PublicKey, content: SignedContent) -> bool:
    # For DSSE, content.digest is sha256(PAE): the client spec allows logging
    # a DSSE signature as a hashedrekord over the PAE.
    data_hash = spec["data"]["hash"]
    sig = spec["signature"]
    return (
        data_hash["algorithm"] == "sha256"
        and data_hash["value"] == content.digest.hex()
        and base64.b64decode(sig["content"], validate=True) == content.signature
        and _pem_key_matches(sig["publicKey"]["content"], key)
    )


def _hashedrekord_v2(raw: bytes, key: PublicKey, content: SignedContent) -> bool:
    entry = rekor_v2_entry.Entry.from_json(raw)
    rekord = entry.spec.hashed_rekord_v002
    if entry.kind != "hashedrekord" or entry.api_version != "0.0.2" or rekord is None:
        return False
    verifier = rekord.signature.verifier
    # Rekor v2 logs DSSE as hashedrekord over sha256(PAE) (rekor-v2-spec 6.1.4).
    return (
        rekord.data.algorithm.value == "SHA2_256"
        and rekord.data.digest == content.digest
        and rekord.signature.content == content.signature
        and verifier.public_key is not None
        and verifier.public_key.raw_bytes == _spki(key)
    )


def _dsse_v1(spec: Any, key: PublicKey, content: SignedContent) -> bool:
    if content.payload is None:
        return False
    payload_hash = spec["payloadHash"]
    logged = sorted(
        base64.b64decode(s["signature"], validate=True)
        for s in spec["signatures"]
        if _pem_key_matches(s["verifier"], key)
    )
    return (
        payload_hash["algorithm"] == "sha256"
        and payload_hash["value"] == hashlib.sha256(content.payload).hexdigest()
        and len(logged) == len(spec["signatures"])
        and logged == sorted(content.dsse_signatures)
    )


def _intoto_v2(spec: Any, key: PublicKey, content: SignedContent) -> bool:
    if content.payload is None:
        return False
    payload_hash = spec["payloadHash"]
    sigs = spec["envelope"]["signatures"]
    logged = sorted(
        base64.b64decode(base64.b64decode(s["sig"], validate=True), validate=True)
        for s in sigs
        if _pem_key_matches(s["publicKey"], key)
    )
    return (
        payload_hash["algorithm"] == "sha256"
        and payload_hash["value"] == hashlib.sha256(content.payload).hexdigest()
        and len(logged) == len(sigs)
        and logged == sorted(content.dsse_signatures)
    )
