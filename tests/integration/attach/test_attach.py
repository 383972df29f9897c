# SPDX-License-Identifier: Apache-2.0
"""Attaching attestations to the real registry, read back over the plain distribution API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from attestor.digests import sha256_digest
from attestor.errors import UpstreamError
from attestor.registry import BlobCache, RegistryClient, parse_reference
from attestor.registry.media_types import OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST
from attestor.services.attach import AttachItem, AttachResult, attach_attestations
from attestor.signing.bundle import BUNDLE_V03_MEDIA_TYPE
from attestor.statement import PREDICATE_TYPE
from attestor.verify import TrustedKey, Verifier
from attestor.verify.bundle import Artifact, BundleVerifier
from attestor.verify.trust import public_good
from tests.harness import _proc
from tests.integration.attach._helpers import NOW, Image, sign_items

DSSE = "application/vnd.dsse.envelope.v1+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX])


class Distribution:
    """Plain GETs on /v2/ (independent of the code under test)."""

    def __init__(self, url: str, repo: str) -> None:
        self.base = f"{url}/v2/{repo}"

    def manifest(self, ident: str) -> tuple[dict[str, Any], bytes, requests.Response]:
        resp = requests.get(f"{self.base}/manifests/{ident}", headers={"Accept": ACCEPT}, timeout=5)
        assert resp.status_code == 200, (ident, resp.status_code, resp.text[:200])
        return json.loads(resp.content), resp.content, resp

    def status(self, ident: str) -> int:
        resp = requests.head(
            f"{self.base}/manifests/{ident}", headers={"Accept": ACCEPT}, timeout=5
        )
        return resp.status_code

    def blob(self, digest: str) -> bytes:
        resp = requests.get(f"{self.base}/blobs/{digest}", timeout=5)
        assert resp.status_code == 200, (digest, resp.status_code)
        assert sha256_digest(resp.content) == digest
        return resp.content

    def tags(self) -> list[str]:
        resp = requests.get(f"{self.base}/tags/list", timeout=5)
        assert resp.status_code == 200
        return sorted(resp.json()["tags"])


def _attach(
    client: RegistryClient, image: Image, items: list[AttachItem], **kw: Any
) -> AttachResult:
    return attach_attestations(
        client,
        image.ref,
        image.manifest_digest,
        image.media_type,
        len(image.manifest),
        items,
        now=kw.get("now", NOW),
    )


@pytest.fixture
def public_key(key: Any) -> TrustedKey:
    return TrustedKey.from_pem(key[1].public_key_pem)


def test_cosign_tag_and_bundle_referrers_read_back(
    client: RegistryClient,
    registry: Any,
    copy_image: Callable[..., Image],
    key: Any,
    public_key: TrustedKey,
) -> None:
    image = copy_image()
    items = sign_items(image, key)
    n = len(items)
    assert n >= 2
    result = _attach(client, image, items)
    dist = Distribution(registry.url, image.repo_path)
    hexd = image.manifest_digest.split(":", 1)[1]

    # 1. cosign's .att image
    assert result.cosign_tag == f"sha256-{hexd}.att"
    att, att_bytes, resp = dist.manifest(result.cosign_tag)
    assert sha256_digest(att_bytes) == result.cosign_manifest_digest
    assert resp.headers["Content-Type"] == OCI_MANIFEST
    assert att["schemaVersion"] == 2 and att["mediaType"] == OCI_MANIFEST
    assert att["config"]["mediaType"] == OCI_CONFIG
    config = json.loads(dist.blob(att["config"]["digest"]))
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [sha256_digest(i.envelope_json) for i in items],
    }
    assert len(config["history"]) == n
    assert len(att["layers"]) == n
    verifier = Verifier(keys=[public_key])
    for layer, item, (layer_digest, _, _) in zip(att["layers"], items, image.layers, strict=True):
        assert layer["mediaType"] == DSSE
        assert layer["annotations"] == {
            "dev.cosignproject.cosign/signature": "",
            "predicateType": PREDICATE_TYPE,
        }
        blob = dist.blob(layer["digest"])
        assert blob == item.envelope_json
        assert layer["size"] == len(blob)
        verified = verifier.verify_envelope(blob, artifact_digest=layer_digest)
        assert verified.predicate_type == PREDICATE_TYPE

    # 2. bundle referrers: no referrers API here, so the tag schema index
    assert (
        requests.get(f"{dist.base}/referrers/{image.manifest_digest}", timeout=5).status_code == 404
    )
    assert result.referrers_tag == f"sha256-{hexd}"
    index, _, resp = dist.manifest(result.referrers_tag)
    assert resp.headers["Content-Type"] == OCI_INDEX
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    assert [m["digest"] for m in index["manifests"]] == list(result.referrers)
    assert len(set(result.referrers)) == n
    bundles = BundleVerifier(public_good("production"))
    for entry, item, (layer_digest, _, _) in zip(
        index["manifests"], items, image.layers, strict=True
    ):
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["artifactType"] == BUNDLE_V03_MEDIA_TYPE
        assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == PREDICATE_TYPE
        assert entry["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
        assert entry["annotations"]["org.opencontainers.image.created"] == "2026-11-27T05:00:00Z"
        manifest, manifest_bytes, _ = dist.manifest(entry["digest"])
        assert entry["size"] == len(manifest_bytes)
        assert manifest["artifactType"] == BUNDLE_V03_MEDIA_TYPE
        assert manifest["annotations"] == entry["annotations"]
        assert manifest["subject"] == {
            "mediaType": OCI_MANIFEST,
            "digest": image.manifest_digest,
            "size": len(image.manifest),
        }
        assert manifest["config"] == {
            "mediaType": OCI_EMPTY,
            "digest": sha256_digest(b"{}"),
            "size": 2,
        }
        assert dist.blob(manifest["config"]["digest"]) == b"{}"
        (layer,) = manifest["layers"]
        assert layer["mediaType"] == BUNDLE_V03_MEDIA_TYPE
        bundle = dist.blob(layer["digest"])
        assert bundle == item.bundle_json
        checked = bundles.verify(
            bundle,
            Artifact.from_digest(layer_digest),
            now=NOW,
            key=public_key.public_key,
            require_tlog=False,
        )
        assert checked.signer == "key" and checked.content == "dsse"
        assert checked.predicate_type == PREDICATE_TYPE

    assert dist.tags() == sorted(["latest", result.cosign_tag, result.referrers_tag])


def test_attaching_twice_changes_nothing(
    client: RegistryClient, registry: Any, copy_image: Callable[..., Image], key: Any
) -> None:
    image = copy_image()
    items = sign_items(image, key)
    first = _attach(client, image, items)
    dist = Distribution(registry.url, image.repo_path)
    att_before = dist.manifest(first.cosign_tag)[1]
    index_before = dist.manifest(str(first.referrers_tag))[1]
    # Later, with the items repeated: still nothing new.
    again = _attach(client, image, items + items, now=NOW + timedelta(hours=1))
    assert again.cosign_manifest_digest == first.cosign_manifest_digest
    assert again.referrers == first.referrers + first.referrers
    assert dist.manifest(first.cosign_tag)[1] == att_before
    assert dist.manifest(str(first.referrers_tag))[1] == index_before
    assert dist.tags() == sorted(["latest", first.cosign_tag, str(first.referrers_tag)])


def test_appends_to_what_is_already_attached(
    client: RegistryClient, registry: Any, copy_image: Callable[..., Image], key: Any
) -> None:
    image = copy_image()
    items = sign_items(image, key)
    first = _attach(client, image, items[:1])
    # A second issuance (e.g. after a key rotation) adds, never replaces.
    rest = _attach(client, image, items, now=NOW + timedelta(minutes=5))
    dist = Distribution(registry.url, image.repo_path)
    att = dist.manifest(rest.cosign_tag)[0]
    assert [layer["digest"] for layer in att["layers"]] == [
        sha256_digest(i.envelope_json) for i in items
    ]
    config = json.loads(dist.blob(att["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in att["layers"]]
    index = dist.manifest(str(rest.referrers_tag))[0]
    assert [m["digest"] for m in index["manifests"]] == list(rest.referrers)
    assert rest.referrers[0] == first.referrers[0]
    created = [m["annotations"]["org.opencontainers.image.created"] for m in index["manifests"]]
    assert created == ["2026-11-27T05:00:00Z"] + ["2026-11-27T05:05:00Z"] * (len(items) - 1)


def test_foreign_entries_are_kept(
    client: RegistryClient, registry: Any, copy_image: Callable[..., Image], key: Any
) -> None:
    """Another tool's .att layer and referrer survive our read-modify-write."""
    image = copy_image()
    other = copy_image(repo=image.repo_path, variant="other")
    foreign = sign_items(other, key)[0]  # a valid envelope, just not one of ours
    _attach(client, other, [foreign])  # puts a bundle referrer manifest in the repo
    foreign_referrer = _attach(client, other, [foreign]).referrers[0]
    ref = image.ref
    client.push_blob(ref, foreign.envelope_json)
    dist = Distribution(registry.url, image.repo_path)
    other_att = dist.manifest(f"sha256-{other.manifest_digest.split(':')[1]}.att")[1]
    hexd = image.manifest_digest.split(":", 1)[1]
    # Pre-existing cosign-written .att for our image, holding the foreign layer.
    config_bytes = dist.blob(json.loads(other_att)["config"]["digest"])
    client.push_manifest(ref, other_att, OCI_MANIFEST, tag=f"sha256-{hexd}.att")
    # Pre-existing referrers index listing the foreign manifest.
    foreign_entry = {
        "mediaType": OCI_MANIFEST,
        "digest": foreign_referrer,
        "size": 1,
        "artifactType": "application/x-other",
    }
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign_entry]}
    ).encode()
    client.push_manifest(ref, index, OCI_INDEX, tag=f"sha256-{hexd}")

    items = sign_items(image, key)
    result = _attach(client, image, items)
    att = dist.manifest(result.cosign_tag)[0]
    assert [layer["digest"] for layer in att["layers"]] == [
        sha256_digest(i.envelope_json) for i in [foreign, *items]
    ]
    assert att["config"]["digest"] != sha256_digest(config_bytes)
    listed = dist.manifest(str(result.referrers_tag))[0]["manifests"]
    assert listed[0] == foreign_entry
    assert [m["digest"] for m in listed[1:]] == list(result.referrers)


def test_second_image_does_not_leak_into_the_first(
    client: RegistryClient, registry: Any, copy_image: Callable[..., Image], key: Any
) -> None:
    first = copy_image()
    second = copy_image(repo=first.repo_path, variant="v2")
    assert first.manifest_digest != second.manifest_digest
    items1, items2 = sign_items(first, key), sign_items(second, key)
    r1 = _attach(client, first, items1)
    r2 = _attach(client, second, items2)
    dist = Distribution(registry.url, first.repo_path)
    for result, items, image in ((r1, items1, first), (r2, items2, second)):
        att = dist.manifest(result.cosign_tag)[0]
        assert [layer["digest"] for layer in att["layers"]] == [
            sha256_digest(i.envelope_json) for i in items
        ]
        listed = dist.manifest(str(result.referrers_tag))[0]["manifests"]
        assert [m["digest"] for m in listed] == list(result.referrers)
        for entry in listed:
            assert dist.manifest(entry["digest"])[0]["subject"]["digest"] == image.manifest_digest
    assert not set(r1.referrers) & set(r2.referrers)
    assert r1.cosign_tag != r2.cosign_tag and r1.referrers_tag != r2.referrers_tag


def test_unreachable_registry_is_an_upstream_error(
    copy_image: Callable[..., Image], key: Any, tmp_path: Any
) -> None:
    image = copy_image()
    items = sign_items(image, key)
    host = f"127.0.0.1:{_proc.free_port()}"  # nothing listens there
    dead = RegistryClient(
        insecure_registries=frozenset({host}), cache=BlobCache(tmp_path), timeout=2
    )
    moved = parse_reference(f"{host}/{image.repo_path}@{image.manifest_digest}")
    with pytest.raises(UpstreamError, match=f"attaching attestations to {host}/.*unreachable"):
        attach_attestations(
            dead,
            moved,
            image.manifest_digest,
            image.media_type,
            len(image.manifest),
            items,
            now=NOW,
        )


def test_registry_refusing_pushes_is_an_upstream_error(
    readonly_registry: Any, copy_image: Callable[..., Image], key: Any, tmp_path: Any
) -> None:
    image = copy_image()
    items = sign_items(image, key)
    host = readonly_registry.host
    ro = RegistryClient(insecure_registries=frozenset({host}), cache=BlobCache(tmp_path), timeout=5)
    moved = parse_reference(f"{host}/{image.repo_path}@{image.manifest_digest}")
    with pytest.raises(UpstreamError, match=r"attaching attestations to .*HTTP 405") as err:
        attach_attestations(
            ro, moved, image.manifest_digest, image.media_type, len(image.manifest), items, now=NOW
        )
    assert err.value.detail["status"] == 405


def test_concurrent_attaches_to_one_image_converge(
    registry: Any, copy_image: Callable[..., Image], key: Any, tmp_path: Any
) -> None:
    """Two threads of one process racing on the same tags: both sets end up listed."""
    image = copy_image()
    items = sign_items(image, key)
    halves = (items[: len(items) // 2], items[len(items) // 2 :])
    barrier = threading.Barrier(2)
    results: list[AttachResult] = []
    errors: list[BaseException] = []

    def run(part: list[AttachItem], n: int) -> None:
        own = RegistryClient(
            insecure_registries=frozenset({registry.host}),
            cache=BlobCache(tmp_path / str(n)),
            timeout=5,
        )
        barrier.wait()
        try:
            results.append(_attach(own, image, part))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(h, n)) for n, h in enumerate(halves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    dist = Distribution(registry.url, image.repo_path)
    att = dist.manifest(results[0].cosign_tag)[0]
    assert sorted(layer["digest"] for layer in att["layers"]) == sorted(
        sha256_digest(i.envelope_json) for i in items
    )
    listed = dist.manifest(str(results[0].referrers_tag))[0]["manifests"]
    assert sorted(m["digest"] for m in listed) == sorted(d for r in results for d in r.referrers)
    assert len(listed) == len(items)


class _Overwriter(requests.Session):
    """Right after our first PUT of ``tag``, another writer PUTs ``body`` over it.

    That writer read the tag before we wrote it: the lost update a registry
    without conditional PUTs allows. A timing fault, so it is staged here.
    """

    def __init__(self, tag: str, body: bytes) -> None:
        super().__init__()
        self.tag, self.body, self.done = tag, body, False

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        resp = super().request(method, url, *args, **kwargs)
        if not self.done and method == "PUT" and str(url).endswith(f"/manifests/{self.tag}"):
            self.done = True
            other = requests.put(
                str(url), data=self.body, headers={"Content-Type": OCI_MANIFEST}, timeout=5
            )
            assert other.status_code == 201
        return resp


def test_a_writer_that_overwrote_us_is_merged_on_read_back(
    client: RegistryClient,
    registry: Any,
    copy_image: Callable[..., Image],
    key: Any,
    tmp_path: Any,
) -> None:
    image = copy_image()
    other = copy_image(repo=image.repo_path, variant="racer")
    foreign = sign_items(other, key)[0]
    other_tag = _attach(client, other, [foreign]).cosign_tag
    dist = Distribution(registry.url, image.repo_path)
    racer_body = dist.manifest(other_tag)[1]  # an .att holding only the foreign layer
    items = sign_items(image, key)
    tag = f"sha256-{image.manifest_digest.split(':', 1)[1]}.att"
    session = _Overwriter(tag, racer_body)
    racing = RegistryClient(
        insecure_registries=frozenset({registry.host}),
        cache=BlobCache(tmp_path / "racing"),
        timeout=5,
        session=session,
    )
    result = _attach(racing, image, items)
    assert session.done
    att, body, _ = dist.manifest(tag)
    assert [layer["digest"] for layer in att["layers"]] == [
        sha256_digest(i.envelope_json) for i in [foreign, *items]
    ]
    assert sha256_digest(body) == result.cosign_manifest_digest
