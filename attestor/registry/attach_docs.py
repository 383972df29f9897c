# SPDX-License-Identifier: Apache-2.0
"""The OCI documents that attach attestations to an image (pure, no I/O).

Two layouts, both read back by cosign and other OCI tools:

* **cosign's attestation image** (cosign ``specs/ATTESTATION_SPEC.md``;
  ``pkg/oci/static``, ``pkg/oci/mutate``, ``pkg/oci/empty``): tag
  ``sha256-<hex>.att``, an OCI image manifest whose config is an
  ``application/vnd.oci.image.config.v1+json`` blob and whose layers are the
  DSSE envelopes (``application/vnd.dsse.envelope.v1+json``), each annotated
  ``dev.cosignproject.cosign/signature: ""`` and ``predicateType: <uri>``
  (what ``cosign attest`` writes for a key without a log entry).
* **Sigstore bundle referrers** (cosign ``specs/BUNDLE_SPEC.md``, what cosign
  v3's ``WriteAttestationNewBundleFormat`` pushes): one OCI 1.1 manifest per
  bundle with ``artifactType`` and the one layer of the bundle media type, the
  empty config, ``subject`` = the image, and the ``dev.sigstore.bundle.*`` and
  ``org.opencontainers.image.created`` annotations; plus, where the registry
  has no referrers API, the index under the distribution-spec 1.1 "referrers
  tag schema" tag ``sha256-<hex>``.

Documents are written as compact JSON in the key order Go's ``encoding/json``
gives the go-containerregistry structs cosign uses, so a first attach yields
what cosign would have written for the same envelopes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestor.digests import parse_digest, sha256_digest
from attestor.errors import Conflict, InvalidInput
from attestor.registry import media_types as mt
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE

__all__ = [
    "BUNDLE_CONTENT_ANNOTATION",
    "BUNDLE_PREDICATE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "COSIGN_SIGNATURE_ANNOTATION",
    "CREATED_ANNOTATION",
    "DSSE_MEDIA_TYPE",
    "EMPTY_JSON",
    "PREDICATE_TYPE_ANNOTATION",
    "REKOR_BUNDLE_ANNOTATION",
    "TITLE_ANNOTATION",
    "cosign_config",
    "cosign_keyless_annotations",
    "cosign_layer",
    "cosign_tag",
    "dumps",
    "index_descriptor",
    "merge_cosign_manifest",
    "merge_referrers_index",
    "referrer_manifest",
    "referrers_tag",
]

DSSE_MEDIA_TYPE: Final = "application/vnd.dsse.envelope.v1+json"
COSIGN_SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION: Final = "predicateType"
BUNDLE_CONTENT_ANNOTATION: Final = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_ANNOTATION: Final = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION: Final = "org.opencontainers.image.created"
# cosign pkg/oci/static: what ``cosign verify-attestation`` reads for a keyless layer.
CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"
TITLE_ANNOTATION: Final = "org.opencontainers.image.title"
#: The OCI empty JSON blob (image-spec manifest.md "Guidance for an Empty Descriptor").
EMPTY_JSON: Final = b"{}"
#: go-containerregistry writes the zero ``time.Time`` for cosign's config and history.
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON, keys in insertion order (the bytes we push and digest)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def cosign_tag(manifest_digest: str) -> str:
    """cosign's attestation tag ``sha256-<hex>.att``.

    Raises:
        InvalidInput: ``manifest_digest`` is not a sha256 digest.
    """
    return f"sha256-{parse_digest(manifest_digest)}.att"


def referrers_tag(subject_digest: str) -> str:
    """The referrers tag schema tag ``<alg>-<ref>`` (distribution-spec 1.1).

    Raises:
        InvalidInput: ``subject_digest`` is not a sha256 digest.
    """
    return f"sha256-{parse_digest(subject_digest)}"


def cosign_layer(
    envelope_json: bytes, predicate_type: str, bundle: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``.att`` layer descriptor of one envelope (go ``v1.Descriptor`` order).

    ``bundle`` is the attestation's Sigstore bundle; a keyless one adds the
    certificate, chain and Rekor bundle annotations (see
    :func:`cosign_keyless_annotations`).

    Raises:
        InvalidInput: a keyless bundle whose certificate or log entry is malformed.
    """
    # The signature is "" for attestations (static.NewAttestation): it lives
    # inside the envelope.
    annotations = {COSIGN_SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type}
    if bundle is not None:
        annotations.update(cosign_keyless_annotations(bundle))
    return {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": len(envelope_json),
        "digest": sha256_digest(envelope_json),
        # Go marshals map keys sorted.
        "annotations": dict(sorted(annotations.items())),
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"bundle {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise InvalidInput(f"bundle {what} is not base64") from None


def _pem(der: bytes) -> str:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise InvalidInput("bundle certificate is not DER X.509") from None
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def cosign_keyless_annotations(bundle: Mapping[str, Any]) -> dict[str, str]:
    """cosign's keyless annotations for a Sigstore bundle (v0.1-v0.3); {} when key-signed.

    What ``static.WithCertChain`` and ``static.WithBundle`` write: the PEM
    leaf certificate, the PEM chain below it ("" when the bundle carries only
    the leaf, as v0.3 does; cosign then chains to its trusted root), and the
    ``RekorBundle`` JSON (pkg/cosign/bundle) made from the first log entry
    that has a signed entry timestamp (inclusion promise).

    Raises:
        InvalidInput: a malformed certificate or log entry.
    """
    material = bundle.get("verificationMaterial")
    if not isinstance(material, Mapping):
        return {}
    certs: list[bytes] = []
    leaf = material.get("certificate")
    chain = material.get("x509CertificateChain")
    if isinstance(leaf, Mapping):
        certs = [_b64(leaf.get("rawBytes"), "certificate")]
    elif isinstance(chain, Mapping) and isinstance(chain.get("certificates"), list):
        certs = [_b64(c.get("rawBytes"), "certificate") for c in chain["certificates"]]
    if not certs:
        return {}
    pems = [_pem(der) for der in certs]
    annotations = {CERTIFICATE_ANNOTATION: pems[0], CHAIN_ANNOTATION: "".join(pems[1:])}
    entries = material.get("tlogEntries")
    for entry in entries if isinstance(entries, list) else []:
        promise = entry.get("inclusionPromise") if isinstance(entry, Mapping) else None
        if not isinstance(promise, Mapping):
            continue
        log_id = entry.get("logId")
        try:
            integrated, index = int(entry["integratedTime"]), int(entry["logIndex"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("bundle log entry lacks integratedTime/logIndex") from None
        rekor = {
            # Go marshals []byte as standard base64; RekorPayload's keys in field order.
            "SignedEntryTimestamp": base64.b64encode(
                _b64(promise.get("signedEntryTimestamp"), "signedEntryTimestamp")
            ).decode("ascii"),
            "Payload": {
                "body": base64.b64encode(
                    _b64(entry.get("canonicalizedBody"), "canonicalizedBody")
                ).decode("ascii"),
                "integratedTime": integrated,
                "logIndex": index,
                # Rekor's log ID is hex; the bundle carries its bytes in base64.
                "logID": _b64(
                    log_id.get("keyId") if isinstance(log_id, Mapping) else None, "logId"
                ).hex(),
            },
        }
        annotations[REKOR_BUNDLE_ANNOTATION] = dumps(rekor).decode("utf-8")
        break
    return annotations


def cosign_config(layer_digests: Sequence[str]) -> bytes:
    """The config blob cosign's ``mutate.Append`` yields for these layers.

    cosign starts from ``empty.Image`` and appends one layer per attestation;
    each append adds the layer's diffID (a static layer's diffID is its digest)
    and an empty history entry. Rebuilding it from the layer list therefore
    gives the same bytes cosign gets when it appends to its own ``.att`` image.
    """
    return dumps(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in layer_digests],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
            "config": {},
        }
    )


def _layers_of(existing: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    layers = existing.get("layers")
    if (
        "manifests" in existing
        or existing.get("mediaType", mt.OCI_MANIFEST) not in mt.IMAGE_MANIFEST_MEDIA_TYPES
        or not isinstance(layers, list)
        or not all(isinstance(x, dict) and isinstance(x.get("digest"), str) for x in layers)
    ):
        raise Conflict(f"{where} holds something other than an image manifest; not overwriting")
    return layers


def merge_cosign_manifest(
    existing: Mapping[str, Any] | None, new_layers: Sequence[Mapping[str, Any]], *, where: str
) -> tuple[dict[str, Any], bytes] | None:
    """The ``.att`` manifest with ``new_layers`` appended, and its config blob.

    Existing layers are kept verbatim and first (cosign appends); a new layer
    whose digest is already there is skipped. Returns None when nothing is
    missing, so an identical attach writes nothing.

    Raises:
        Conflict: ``existing`` is not an image manifest (e.g. an index).
    """
    layers = [] if existing is None else list(_layers_of(existing, where))
    present = {layer["digest"] for layer in layers}
    added = False
    for layer in new_layers:
        if layer["digest"] not in present:
            layers.append(dict(layer))
            present.add(layer["digest"])
            added = True
    if not added:
        return None
    config = cosign_config([layer["digest"] for layer in layers])
    config_desc = {"mediaType": mt.OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)}
    if existing is None:
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config_desc,
            "layers": layers,
        }
    else:
        # Keep what another writer put there (media types, annotations).
        manifest = dict(existing)
        old = existing.get("config")
        manifest["config"] = {
            **(old if isinstance(old, dict) else {}),
            "size": config_desc["size"],
            "digest": config_desc["digest"],
        }
        manifest["config"].setdefault("mediaType", mt.OCI_CONFIG)
        manifest["layers"] = layers
    return manifest, config


def referrer_manifest(
    bundle_json: bytes, predicate_type: str, subject: Mapping[str, Any], *, created: str
) -> dict[str, Any]:
    """The OCI 1.1 manifest that refers one Sigstore bundle to ``subject``."""
    bundle_digest = sha256_digest(bundle_json)
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": BUNDLE_V03_MEDIA_TYPE,
        "config": {
            "mediaType": mt.OCI_EMPTY,
            "digest": sha256_digest(EMPTY_JSON),
            "size": len(EMPTY_JSON),
        },
        "layers": [
            {
                "mediaType": BUNDLE_V03_MEDIA_TYPE,
                "digest": bundle_digest,
                "size": len(bundle_json),
                "annotations": {
                    TITLE_ANNOTATION: f"sha256-{parse_digest(bundle_digest)}.sigstore.json"
                },
            }
        ],
        "subject": dict(subject),
        "annotations": {
            BUNDLE_CONTENT_ANNOTATION: "dsse-envelope",
            BUNDLE_PREDICATE_ANNOTATION: predicate_type,
            CREATED_ANNOTATION: created,
        },
    }


def index_descriptor(manifest_bytes: bytes, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A referrers-index entry for a referrer manifest (its annotations copied).

    The referrers API copies ``artifactType`` and the manifest annotations into
    each entry (distribution-spec 1.1); the tag schema index must look the same.
    """
    entry: dict[str, Any] = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": sha256_digest(manifest_bytes),
        "size": len(manifest_bytes),
        "artifactType": manifest["artifactType"],
    }
    if manifest.get("annotations"):
        entry["annotations"] = dict(manifest["annotations"])
    return entry


def merge_referrers_index(
    existing: Mapping[str, Any] | None, entries: Sequence[Mapping[str, Any]], *, where: str
) -> dict[str, Any] | None:
    """The referrers index with ``entries`` added; None when all are listed.

    Raises:
        Conflict: ``existing`` is not an OCI image index.
    """
    manifests: list[Any] = []
    if existing is not None:
        listed = existing.get("manifests")
        if existing.get("mediaType", mt.OCI_INDEX) != mt.OCI_INDEX or not isinstance(listed, list):
            raise Conflict(f"{where} holds something other than an OCI image index")
        manifests = list(listed)
    present = {m.get("digest") for m in manifests if isinstance(m, dict)}
    missing = [dict(e) for e in entries if e["digest"] not in present]
    if not missing:
        return None
    for entry in missing:
        if entry["digest"] not in present:
            manifests.append(entry)
            present.add(entry["digest"])
    index: dict[str, Any] = dict(existing) if existing is not None else {"schemaVersion": 2}
    index["mediaType"] = mt.OCI_INDEX
    index["manifests"] = manifests
    return index
