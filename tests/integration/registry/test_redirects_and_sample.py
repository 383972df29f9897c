# SPDX-License-Identifier: Apache-2.0
"""Redirect rules, and the harness's real sample image (built by umoci, pushed by skopeo)."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path
from typing import Any

import pytest

from attestor.digests import sha256_digest
from attestor.errors import UpstreamError
from attestor.policy import load_policies
from attestor.registry import BlobCache, RegistryClient, admitted_by_policies, parse_reference
from tests.integration.registry._images import push_image
from tests.integration.registry._servers import redirector

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture
def pushed(client: RegistryClient, registry: Any) -> Any:
    return push_image(client, f"{registry.host}/redir/{uuid.uuid4().hex[:12]}", "v1", layers=1)


def _fetch(host: str, extra_insecure: set[str], pushed: Any, tmp_path: Path, **kwargs: Any) -> Path:
    client = RegistryClient(
        insecure_registries=frozenset({host, *extra_insecure}),
        cache=BlobCache(tmp_path / uuid.uuid4().hex),
        timeout=5,
        **kwargs,
    )
    ref = parse_reference(f"{host}/{pushed.name.split('/', 1)[1]}")
    return client.fetch_blob(ref, pushed.layer_digests[0], expected_size=pushed.layer_sizes[0])


def test_redirect_to_a_policy_registry_is_followed(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    # The shipped dev policy admits loopback registries: a redirect from one
    # to another (another port) is followed.
    admitted = admitted_by_policies(load_policies(POLICIES))
    with redirector(f"http://{registry.host}{{path}}") as server:
        path = _fetch(server.host, {registry.host}, pushed, tmp_path, registry_admitted=admitted)
    assert sha256_digest(path.read_bytes()) == pushed.layer_digests[0]


def test_redirect_to_a_listed_blob_host_is_followed(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with redirector(f"http://{registry.host}{{path}}") as server:
        path = _fetch(
            server.host, {registry.host}, pushed, tmp_path, blob_hosts=frozenset({registry.host})
        )
    assert sha256_digest(path.read_bytes()) == pushed.layer_digests[0]


def test_redirect_to_another_loopback_port_is_refused_without_policy(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with redirector(f"http://{registry.host}{{path}}") as server:
        with pytest.raises(UpstreamError) as err:
            _fetch(server.host, {registry.host}, pushed, tmp_path)
    assert err.value.message == (
        f"registry {server.host}: redirect refused: {registry.host} is not an allowed host"
    )


@pytest.mark.parametrize(
    "target",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "http://example.invalid{path}",  # plain HTTP to a host not marked insecure
        "http://{self}{path}",  # a loop
    ],
)
def test_disallowed_or_endless_redirects_fail(
    target: str, registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with redirector(target) as server:
        with pytest.raises(UpstreamError, match="redirect"):
            _fetch(server.host, set(), pushed, tmp_path)


def test_an_unparsable_location_is_an_upstream_error(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    # urllib cannot split "https://[::1/...": an UpstreamError (502), not a crash (500).
    with redirector("https://[::1{path}") as server:
        with pytest.raises(UpstreamError) as err:
            _fetch(server.host, set(), pushed, tmp_path)
    assert err.value.message == f"registry {server.host} sent an answer we cannot use"


def test_resolves_and_fetches_the_harness_sample_image(
    registry: Any, sample_image: Any, tmp_path: Path
) -> None:
    client = RegistryClient(
        insecure_registries=frozenset({registry.host}), cache=BlobCache(tmp_path)
    )
    by_tag = client.resolve(parse_reference(sample_image.by_tag))
    by_digest = client.resolve(parse_reference(sample_image.by_digest))
    assert by_tag.manifest_digest == by_digest.manifest_digest == sample_image.manifest_digest
    assert by_tag.config_digest == sample_image.config_digest
    assert len(by_tag.layers) == len(sample_image.layers) >= 2
    for layer, info, diff_id in zip(
        by_tag.layers, sample_image.layers, by_tag.image_config.diff_ids, strict=True
    ):
        assert (layer.digest, layer.size, diff_id) == (info.digest, info.size, info.diff_id)
        path = client.fetch_blob(by_tag.reference, layer.digest, expected_size=layer.size)
        if layer.media_type.endswith("gzip"):
            assert sha256_digest(gzip.decompress(path.read_bytes())) == diff_id
