# SPDX-License-Identifier: Apache-2.0
"""The attach documents (pure) and the input checks done before any push."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from attestor.digests import sha256_digest
from attestor.dsse import Envelope, Signature
from attestor.errors import Conflict, InvalidInput
from attestor.registry import BlobCache, RegistryClient, parse_reference
from attestor.registry import attach_docs as docs
from attestor.registry.media_types import OCI_INDEX, OCI_MANIFEST
from attestor.services.attach import AttachItem, attach_attestations
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE, bundle_from_envelope

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


def test_tags_follow_cosign_and_the_referrers_tag_schema() -> None:
    assert docs.cosign_tag(DIGEST) == f"sha256-{HEX}.att"
    assert docs.referrers_tag(DIGEST) == f"sha256-{HEX}"
    with pytest.raises(InvalidInput):
        docs.cosign_tag("sha512:" + HEX)


def test_cosign_config_is_byte_identical_to_what_cosign_writes() -> None:
    # go-containerregistry's mutate.Append over empty.Image, one static layer.
    expected = (
        '{"architecture":"","created":"0001-01-01T00:00:00Z",'
        '"history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",'
        f'"rootfs":{{"type":"layers","diff_ids":["{DIGEST}"]}},"config":{{}}}}'
    )
    assert docs.cosign_config([DIGEST]) == expected.encode()


def test_cosign_layer_and_manifest_shape() -> None:
    layer = docs.cosign_layer(b'{"x":1}', "https://slsa.dev/provenance/v1")
    assert docs.dumps(layer) == (
        b'{"mediaType":"application/vnd.dsse.envelope.v1+json","size":7,"digest":"'
        + sha256_digest(b'{"x":1}').encode()
        + b'","annotations":{"dev.cosignproject.cosign/signature":"",'
        b'"predicateType":"https://slsa.dev/provenance/v1"}}'
    )
    merged = docs.merge_cosign_manifest(None, [layer, layer], where="r:t")
    assert merged is not None
    manifest, config = merged
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest["layers"] == [layer]
    assert manifest["config"]["digest"] == sha256_digest(config)
    assert docs.merge_cosign_manifest(manifest, [layer], where="r:t") is None


def test_cosign_merge_appends_after_existing_and_keeps_their_fields() -> None:
    a, b = docs.cosign_layer(b"a", "p"), docs.cosign_layer(b"b", "p")
    first = docs.merge_cosign_manifest(None, [a], where="r:t")
    assert first is not None
    existing = {**first[0], "annotations": {"kept": "yes"}}
    second = docs.merge_cosign_manifest(existing, [b, a], where="r:t")
    assert second is not None
    manifest, config = second
    assert manifest["layers"] == [a, b]
    assert manifest["annotations"] == {"kept": "yes"}
    assert json.loads(config)["rootfs"]["diff_ids"] == [a["digest"], b["digest"]]


@pytest.mark.parametrize(
    "existing",
    [
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": "nope"},
        {"schemaVersion": 2, "mediaType": "application/x-other", "layers": []},
    ],
)
def test_cosign_merge_refuses_to_overwrite_other_documents(existing: dict[str, object]) -> None:
    with pytest.raises(Conflict, match="r:t holds something other"):
        docs.merge_cosign_manifest(existing, [docs.cosign_layer(b"a", "p")], where="r:t")


def test_referrer_manifest_and_index_entry() -> None:
    subject = {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 10}
    manifest = docs.referrer_manifest(b"{}", "p", subject, created="2026-01-01T00:00:00Z")
    assert manifest["artifactType"] == BUNDLE_V03_MEDIA_TYPE
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert manifest["subject"] == subject
    assert manifest["annotations"] == {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "p",
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
    }
    body = docs.dumps(manifest)
    entry = docs.index_descriptor(body, manifest)
    assert entry == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(body),
        "size": len(body),
        "artifactType": BUNDLE_V03_MEDIA_TYPE,
        "annotations": manifest["annotations"],
    }
    index = docs.merge_referrers_index(None, [entry, entry], where="r:t")
    assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    assert docs.merge_referrers_index(index, [entry], where="r:t") is None
    with pytest.raises(Conflict):
        docs.merge_referrers_index({"mediaType": OCI_MANIFEST, "layers": []}, [entry], where="r:t")


# -- input checks: all raise before the (unreachable) registry is contacted --


def _item() -> AttachItem:
    envelope = Envelope("application/vnd.in-toto+json", b"{}", (Signature("k", b"sig"),))
    bundle = json.dumps(bundle_from_envelope(envelope, keyid="k")).encode()
    return AttachItem(envelope.to_json(), bundle, "https://slsa.dev/provenance/v1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest": "sha256:" + "b" * 64}, "not pinned to manifest"),
        ({"media_type": "application/json"}, "is not a manifest"),
        ({"size": 0}, "positive integer"),
        ({"items": []}, "nothing to attach"),
        ({"now": datetime(2026, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
        ({"items": [AttachItem(b"{}", _item().bundle_json, "p")]}, "envelope"),
        ({"items": [AttachItem(_item().envelope_json, b"[]", "p")]}, "bundle mediaType"),
        ({"items": [AttachItem(_item().envelope_json, b"{", "p")]}, "not JSON"),
        ({"items": [AttachItem(_item().envelope_json, _item().bundle_json, "")]}, "predicate"),
    ],
)
def test_bad_input_is_refused_before_any_push(
    change: dict[str, object], message: str, tmp_path: object
) -> None:
    client = RegistryClient(insecure_registries=frozenset(), cache=BlobCache(tmp_path))  # type: ignore[arg-type]
    args: dict[str, object] = {
        "digest": DIGEST,
        "media_type": OCI_MANIFEST,
        "size": 100,
        "items": [_item()],
        "now": datetime(2026, 1, 1, tzinfo=UTC),
        **change,
    }
    with pytest.raises(InvalidInput, match=message):
        attach_attestations(
            client,
            parse_reference(f"registry.invalid/repo@{DIGEST}"),
            DIGEST if "digest" not in change else str(args["digest"]),
            str(args["media_type"]),
            args["size"],  # type: ignore[arg-type]
            args["items"],  # type: ignore[arg-type]
            now=args["now"],  # type: ignore[arg-type]
        )
