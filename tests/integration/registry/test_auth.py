# SPDX-License-Identifier: Apache-2.0
"""Basic and Bearer-token auth, via a local auth proxy in front of the real registry
(the offline registry cannot issue tokens)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from attestor.errors import UpstreamError
from attestor.registry import BlobCache, Credentials, RegistryClient, parse_reference
from tests.integration.registry._images import push_image
from tests.integration.registry._servers import PASSWORD, USER, auth_proxy


@pytest.fixture
def pushed(client: RegistryClient, registry: Any) -> Any:
    return push_image(client, f"{registry.host}/auth/{uuid.uuid4().hex[:12]}", "v1")


def _client(host: str, tmp_path: Path, creds: Credentials | None) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset({host}),
        credentials={host: creds} if creds else None,
        cache=BlobCache(tmp_path / "c"),
        timeout=5,
    )


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_authenticated_pull(mode: str, registry: Any, pushed: Any, tmp_path: Path) -> None:
    with auth_proxy(registry.host, mode) as proxy:
        client = _client(proxy.host, tmp_path, Credentials(USER, PASSWORD))
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        image = client.resolve(ref)
        assert image.manifest_digest == pushed.manifest_digest
        path = client.fetch_blob(ref, image.layers[0].digest, expected_size=image.layers[0].size)
        assert path.stat().st_size == image.layers[0].size
        if mode == "bearer":
            # One token for the repository's pull scope, reused for every request.
            assert proxy.token_requests == [f"repository:{ref.repository}:pull"]


def test_bearer_without_credentials_fails_clearly(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, "bearer") as proxy:
        client = _client(proxy.host, tmp_path, None)
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        with pytest.raises(UpstreamError, match="token endpoint .* answered HTTP 401"):
            client.resolve(ref)


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_wrong_password_fails_clearly(
    mode: str, registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, mode) as proxy:
        client = _client(proxy.host, tmp_path, Credentials(USER, "wrong"))
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        with pytest.raises(UpstreamError) as err:
            client.resolve(ref)
        assert "wrong" not in err.value.message
        assert proxy.host in err.value.message


def test_basic_without_credentials_names_the_host(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, "basic") as proxy:
        client = _client(proxy.host, tmp_path, None)
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        with pytest.raises(UpstreamError, match=f"registry {proxy.host} requires credentials"):
            client.resolve(ref)


def test_static_bearer_token_skips_the_token_endpoint(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, "bearer") as proxy:
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        token = Credentials(token=f"tok repository:{ref.repository}:pull")
        image = _client(proxy.host, tmp_path, token).resolve(ref)
        assert image.manifest_digest == pushed.manifest_digest
        assert proxy.token_requests == []
        wrong = _client(proxy.host, tmp_path / "w", Credentials(token="tok nope"))
        with pytest.raises(UpstreamError, match="refused our credentials") as err:
            wrong.resolve(ref)
        assert "nope" not in err.value.message


def test_static_token_cannot_answer_basic(registry: Any, pushed: Any, tmp_path: Path) -> None:
    with auth_proxy(registry.host, "basic") as proxy:
        client = _client(proxy.host, tmp_path, Credentials(token="t"))
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        with pytest.raises(UpstreamError, match=f"registry {proxy.host} requires credentials"):
            client.resolve(ref)


@pytest.mark.parametrize("mode", ["open", "bearer"])
def test_cookies_a_registry_sets_are_never_sent_back(
    mode: str, registry: Any, pushed: Any, tmp_path: Path
) -> None:
    # The client lives as long as a worker process and serves every job; a
    # cookie set while one job pulls must not reach the next request.
    with auth_proxy(registry.host, mode) as proxy:
        proxy.set_cookie = "sticky=job-1; Path=/"
        client = _client(proxy.host, tmp_path, Credentials(USER, PASSWORD))
        ref = parse_reference(pushed.name.replace(registry.host, proxy.host) + ":v1")
        image = client.resolve(ref)
        client.fetch_blob(ref, image.layers[0].digest, expected_size=image.layers[0].size)
        client.resolve(ref)
        assert len(proxy.seen_cookies) >= 3
        assert set(proxy.seen_cookies) == {None}
