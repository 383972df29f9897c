# SPDX-License-Identifier: Apache-2.0
"""RegistryClient against the real docker-registry started by the harness."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from attestor.digests import sha256_digest
from attestor.errors import GatewayTimeout, InvalidInput, NotFound, TooLarge, UpstreamError
from attestor.registry import BlobCache, RegistryClient, RegistryLimits, parse_reference
from attestor.registry.media_types import OCI_MANIFEST
from tests.integration.registry._images import descriptor, push_image, push_index


def _repo(registry: Any) -> str:
    return f"{registry.host}/test/{uuid.uuid4().hex[:12]}"


def test_resolve_by_tag_and_digest_records_both(client: RegistryClient, registry: Any) -> None:
    pushed = push_image(client, _repo(registry), "v1", layers=3)
    by_tag = client.resolve(parse_reference(f"{pushed.name}:v1"))
    assert by_tag.manifest_digest == pushed.manifest_digest
    assert by_tag.tag == "v1"
    assert by_tag.manifest == pushed.manifest
    assert by_tag.media_type == OCI_MANIFEST
    assert by_tag.config_digest == pushed.config_digest
    assert [layer.digest for layer in by_tag.layers] == list(pushed.layer_digests)
    assert [layer.size for layer in by_tag.layers] == list(pushed.layer_sizes)
    assert by_tag.image_config.diff_ids == pushed.diff_ids
    assert by_tag.index_digest is None
    assert str(by_tag.pinned) == f"{pushed.name}@{pushed.manifest_digest}"

    by_digest = client.resolve(parse_reference(f"{pushed.name}@{pushed.manifest_digest}"))
    assert by_digest.manifest == by_tag.manifest
    assert by_digest.tag is None


def test_index_resolves_to_the_platform_manifest(client: RegistryClient, registry: Any) -> None:
    name = _repo(registry)
    amd = push_image(client, name, "amd", arch="amd64")
    arm = push_image(client, name, "arm", arch="arm64")
    index_digest = push_index(client, name, "multi", [amd, arm])
    got = client.resolve(parse_reference(f"{name}:multi"), platform="linux/arm64")
    assert got.index_digest == index_digest
    assert got.manifest_digest == arm.manifest_digest
    assert got.image_config.architecture == "arm64"
    assert got.platform == "linux/arm64"
    default = client.resolve(parse_reference(f"{name}@{index_digest}"))
    assert default.manifest_digest == amd.manifest_digest
    with pytest.raises(InvalidInput, match="no image for platform linux/s390x"):
        client.resolve(parse_reference(f"{name}:multi"), platform="linux/s390x")


def test_fetch_blob_verifies_caches_and_never_downloads_twice(
    registry: Any, tmp_path: Path, session: Any
) -> None:
    cache = BlobCache(tmp_path / "blobs")
    client = RegistryClient(
        insecure_registries=frozenset({registry.host}), cache=cache, session=session
    )
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    digest, size = pushed.layer_digests[0], pushed.layer_sizes[0]
    path = client.fetch_blob(ref, digest, expected_size=size)
    assert sha256_digest(path.read_bytes()) == digest
    assert sha256_digest(gzip.decompress(path.read_bytes())) == pushed.diff_ids[0]
    assert cache.path_for(digest) == path
    before = len(session.sent)
    # A second client on the same cache directory: still no HTTP at all.
    other = RegistryClient(
        insecure_registries=frozenset({registry.host}), cache=cache, session=session
    )
    assert other.fetch_blob(ref, digest, expected_size=size) == path
    assert client.fetch_blob(ref, digest, expected_size=size) == path
    assert len(session.sent) == before
    assert cache.verify(digest)


def test_corrupted_blob_is_a_digest_mismatch_and_not_cached(
    client: RegistryClient, registry: Any, blob_file: Any, tmp_path: Path
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    data = blob_file(pushed.layer_digests[1])
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(UpstreamError, match="wrong blob") as err:
        client.fetch_blob(ref, pushed.layer_digests[1], expected_size=pushed.layer_sizes[1])
    assert err.value.detail["expected"] == pushed.layer_digests[1]
    assert err.value.detail["actual"] == sha256_digest(bytes(raw))
    assert BlobCache(tmp_path / "blobs").path_for(pushed.layer_digests[1]) is None
    assert not list((tmp_path / "blobs").rglob(".partial-*"))


def test_corrupted_config_fails_resolve(
    client: RegistryClient, registry: Any, blob_file: Any
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    data = blob_file(pushed.config_digest)
    data.write_bytes(data.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(UpstreamError, match="expected " + pushed.config_digest):
        client.resolve(parse_reference(f"{pushed.name}:v1"))


def test_missing_blob_is_an_upstream_error(
    client: RegistryClient, registry: Any, blob_file: Any
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    blob_file(pushed.layer_digests[0]).unlink()
    ref = parse_reference(f"{pushed.name}:v1")
    with pytest.raises(UpstreamError, match="missing blob " + pushed.layer_digests[0]):
        client.fetch_blob(ref, pushed.layer_digests[0], expected_size=pushed.layer_sizes[0])


def test_unknown_manifest_is_not_found(client: RegistryClient, registry: Any) -> None:
    with pytest.raises(NotFound):
        client.resolve(parse_reference(f"{_repo(registry)}:nope"))
    with pytest.raises(NotFound):
        client.resolve(parse_reference(f"{_repo(registry)}@{sha256_digest(b'x')}"))


def test_wrong_size_descriptor_is_rejected(client: RegistryClient, registry: Any) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    with pytest.raises(UpstreamError, match="descriptor"):
        client.fetch_blob(ref, pushed.layer_digests[0], expected_size=pushed.layer_sizes[0] - 1)


def test_artifact_is_not_an_image(client: RegistryClient, registry: Any) -> None:
    pushed = push_image(
        client,
        _repo(registry),
        "sig",
        layers=1,
        config_media_type="application/vnd.dev.cosign.artifact.sig.v1+json",
    )
    with pytest.raises(InvalidInput, match="not a container image: config media type"):
        client.resolve(parse_reference(f"{pushed.name}:sig"))
    odd = push_image(client, _repo(registry), "odd", layers=1, layer_media_type="text/plain")
    with pytest.raises(InvalidInput, match="layers\\[0\\] media type"):
        client.resolve(parse_reference(f"{odd.name}:odd"))


def test_oversize_manifest_and_config(registry: Any, tmp_path: Path) -> None:
    host = frozenset({registry.host})
    client = RegistryClient(insecure_registries=host, cache=BlobCache(tmp_path))
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    small = RegistryClient(
        insecure_registries=host,
        cache=BlobCache(tmp_path),
        limits=RegistryLimits(max_manifest_bytes=len(pushed.manifest) - 1),
    )
    with pytest.raises(TooLarge, match="manifest"):
        small.resolve(ref)
    small = RegistryClient(
        insecure_registries=host,
        cache=BlobCache(tmp_path),
        limits=RegistryLimits(max_config_bytes=64),
    )
    with pytest.raises(TooLarge, match="config"):
        small.resolve(ref)
    small = RegistryClient(
        insecure_registries=host,
        cache=BlobCache(tmp_path),
        limits=RegistryLimits(max_blob_bytes=64),
    )
    with pytest.raises(TooLarge):
        small.fetch_blob(ref, pushed.layer_digests[0], expected_size=pushed.layer_sizes[0])


def test_push_manifest_reads_back_and_attaches_by_tag(
    client: RegistryClient, registry: Any
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    envelope = json.dumps({"payloadType": "application/vnd.in-toto+json"}).encode()
    empty = b"{}"
    client.push_blob(ref, envelope)
    assert client.push_blob(ref, envelope) == sha256_digest(envelope)  # already there
    client.push_blob(ref, empty)
    att = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [
                descriptor(
                    "application/vnd.dsse.envelope.v1+json",
                    envelope,
                    annotations={"predicateType": "https://slsa.dev/provenance/v1"},
                )
            ],
        }
    ).encode()
    tag = pushed.manifest_digest.replace(":", "-") + ".att"
    digest = client.push_manifest(ref, att, OCI_MANIFEST, tag=tag)
    assert digest == sha256_digest(att)
    path = client.fetch_blob(ref, sha256_digest(envelope), expected_size=len(envelope))
    assert path.read_bytes() == envelope
    # An attestation manifest is not an image: resolve refuses it.
    with pytest.raises(InvalidInput):
        client.resolve(parse_reference(f"{pushed.name}:{tag}"))


def test_unreachable_registry(tmp_path: Path) -> None:
    from tests.integration.registry._servers import free_port

    host = f"127.0.0.1:{free_port()}"
    client = RegistryClient(insecure_registries=frozenset({host}), cache=BlobCache(tmp_path))
    with pytest.raises(UpstreamError) as err:
        client.resolve(parse_reference(f"{host}/a:b"))
    # A fixed message: the library's text (errno, resolved address) is only logged.
    assert err.value.message == f"registry {host} is unreachable"
    assert err.value.detail == {"registry": host, "reason": "unreachable"}


def test_registry_that_never_answers_times_out(tmp_path: Path) -> None:
    from tests.integration.registry._servers import silent_server

    with silent_server() as host:
        client = RegistryClient(
            insecure_registries=frozenset({host}), cache=BlobCache(tmp_path), timeout=0.5
        )
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout, match=f"registry {host} timed out after 0.5s"):
            client.resolve(parse_reference(f"{host}/a:b"))
        assert time.monotonic() - t0 < 5


def test_https_is_used_unless_the_host_is_insecure(registry: Any, tmp_path: Path) -> None:
    # The registry speaks plain HTTP; without the insecure flag we try TLS and fail.
    client = RegistryClient(insecure_registries=frozenset(), cache=BlobCache(tmp_path), timeout=2)
    with pytest.raises(UpstreamError, match=registry.host):
        client.resolve(parse_reference(f"{registry.host}/a:b"))


def test_concurrent_fetches_download_once(
    client: RegistryClient, registry: Any, session: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pushed = push_image(client, _repo(registry), "v1", layers=1)
    ref = parse_reference(f"{pushed.name}:v1")
    digest, size = pushed.layer_digests[0], pushed.layer_sizes[0]
    with ThreadPoolExecutor(4) as pool:
        paths = set(
            pool.map(lambda _: client.fetch_blob(ref, digest, expected_size=size), range(8))
        )
    assert len(paths) == 1
    gets = [url for method, url in session.sent if method == "GET" and url.endswith(digest)]
    assert len(gets) == 1
    # The per-digest download locks go once the downloads end: a client that
    # serves a worker process for its whole life does not grow per blob.
    assert len(client._locks) == 0


def test_corrupted_manifest_fails_by_digest_and_by_tag(
    client: RegistryClient, registry: Any, blob_file: Any
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    data = blob_file(pushed.manifest_digest)
    data.write_bytes(data.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    for ref in (f"{pushed.name}@{pushed.manifest_digest}", f"{pushed.name}:v1"):
        with pytest.raises(UpstreamError, match="served manifest") as err:
            client.resolve(parse_reference(ref))
        assert err.value.detail["expected"] == pushed.manifest_digest


def test_registry_5xx_is_an_upstream_error(tmp_path: Path) -> None:
    from tests.integration.registry._servers import failing_server

    with failing_server() as host:
        client = RegistryClient(insecure_registries=frozenset({host}), cache=BlobCache(tmp_path))
        with pytest.raises(UpstreamError, match=f"registry {host} failed: HTTP 503") as err:
            client.resolve(parse_reference(f"{host}/a:b"))
        assert err.value.detail == {"registry": host, "status": 503}


def test_config_is_cached_by_digest(
    client: RegistryClient, registry: Any, session: Any, blob_file: Any
) -> None:
    pushed = push_image(client, _repo(registry), "v1")
    ref = parse_reference(f"{pushed.name}:v1")
    first = client.resolve(ref)
    # The registry's copy may now change: the verified cached copy is used.
    blob_file(pushed.config_digest).write_bytes(b"{}")
    again = client.resolve(ref)
    assert again.config == first.config
    gets = [u for m, u in session.sent if m == "GET" and u.endswith(pushed.config_digest)]
    assert len(gets) == 1
