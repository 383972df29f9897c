# SPDX-License-Identifier: Apache-2.0
"""The registry credentials file reaches the issuing server's registry client."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestor.registry import RegistryClient
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server
from tests.integration.registry._servers import PASSWORD, USER, auth_proxy


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_issuance_through_an_authenticating_registry(
    mode: str,
    make_server: Callable[..., Server],
    registry: Any,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    image = push(pusher, unique_name("auth"), "v1")
    with auth_proxy(registry.host, mode) as proxy:
        creds = tmp_path / f"creds-{mode}.json"
        creds.write_text(json.dumps({proxy.host: {"username": USER, "password": PASSWORD}}))
        creds.chmod(0o600)
        env = {
            "ATTESTOR_INSECURE_REGISTRIES": f"{registry.host},{proxy.host}",
            "ATTESTOR_REGISTRY_CREDENTIALS_FILE": str(creds),
        }
        server = make_server(env=env)
        response = server.issue(image.by_tag.replace(registry.host, proxy.host))
        assert response.status_code == 201, response.get_json()
        assert proxy.requests > 0
        # Without the file the same registry refuses us.
        bare = make_server(env={"ATTESTOR_INSECURE_REGISTRIES": proxy.host})
        refused = bare.issue(image.by_tag.replace(registry.host, proxy.host))
        assert refused.status_code == 502
