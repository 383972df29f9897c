# SPDX-License-Identifier: Apache-2.0
"""A registry cannot steer the server: redirects and token realms go only to
allowed hosts, credentials only where they are configured to go, and error
messages never describe what the server can or cannot reach."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from attestor.config import load_settings
from attestor.errors import ConfigError, UpstreamError
from attestor.policy import load_policies
from attestor.registry import (
    BlobCache,
    Credentials,
    RegistryClient,
    admitted_by_policies,
    parse_reference,
)
from attestor.services.context import adapters_from_settings
from tests.integration.registry._images import push_image
from tests.integration.registry._servers import (
    PASSWORD,
    USER,
    auth_proxy,
    free_port,
    listener,
    redirector,
    stalling_server,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"
LOOPBACK_ADMITTED = admitted_by_policies(load_policies(POLICIES))


class RecordingSession(requests.Session):
    """A real session that records every URL it is asked to send to."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent.append(str(url))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def pushed(client: RegistryClient, registry: Any) -> Any:
    return push_image(client, f"{registry.host}/steer/{uuid.uuid4().hex[:12]}", "v1", layers=1)


def _client(tmp_path: Path, *insecure: str, **kwargs: Any) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset(insecure),
        cache=BlobCache(tmp_path / uuid.uuid4().hex),
        timeout=3,
        **kwargs,
    )


def _fetch_first_layer(client: RegistryClient, host: str, pushed: Any) -> Path:
    ref = parse_reference(f"{host}/{pushed.name.split('/', 1)[1]}")
    return client.fetch_blob(ref, pushed.layer_digests[0], expected_size=pushed.layer_sizes[0])


def test_blob_redirect_to_127_0_0_2_is_refused_without_connecting(
    pushed: Any, tmp_path: Path
) -> None:
    with listener("127.0.0.2") as target, redirector(f"https://{target.host}{{path}}") as server:
        client = _client(tmp_path, server.host)
        with pytest.raises(UpstreamError) as err:
            _fetch_first_layer(client, server.host, pushed)
        time.sleep(0.2)  # a connection attempt, had there been one, is accepted by now
        assert target.accepted == 0
    assert err.value.message == (
        f"registry {server.host}: redirect refused: {target.host} is not an allowed host"
    )
    assert err.value.detail["reason"] == "redirect-refused"


@pytest.mark.parametrize(
    "target",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/x",
        "https://192.168.1.1/x",
        "https://[fc00::1]/x",
        "https://[::ffff:127.0.0.1]:443/x",
        "https://[fe80::1]/x",
        "https://0.0.0.0/x",
        "https://224.0.0.1/x",
    ],
)
def test_redirects_to_private_addresses_are_refused_before_any_request(
    target: str, pushed: Any, tmp_path: Path
) -> None:
    session = RecordingSession()
    with redirector(target) as server:
        client = _client(tmp_path, server.host, session=session)
        t0 = time.monotonic()
        with pytest.raises(UpstreamError, match="redirect refused: .* is not an allowed host"):
            _fetch_first_layer(client, server.host, pushed)
    assert time.monotonic() - t0 < 2
    # The registry was asked; the address it named was not.
    assert session.sent == [
        f"http://{server.host}/v2/{pushed.name.split('/', 1)[1]}/blobs/{pushed.layer_digests[0]}"
    ]


def test_a_name_that_resolves_to_loopback_is_refused_at_connect(
    pushed: Any, tmp_path: Path
) -> None:
    # "localhost" is a name, not a literal: it is resolved once and every
    # address it has is loopback, so nothing is connected to.
    with listener("127.0.0.1") as target:
        with redirector(f"http://localhost:{target.port}{{path}}") as server:
            client = _client(tmp_path, server.host, f"localhost:{target.port}")
            with pytest.raises(UpstreamError) as err:
                _fetch_first_layer(client, server.host, pushed)
        time.sleep(0.2)
        assert target.accepted == 0
    assert err.value.message == (
        f"registry {server.host}: redirect refused: localhost:{target.port} is not an allowed host"
    )


def test_a_pooled_connection_to_a_loopback_name_is_not_reused_for_a_redirect(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    # The registry used as "localhost:<port>" is its own host (trusted), which
    # leaves a pooled connection to that name. A second registry then
    # redirects to the same name: the pooled connection's peer is loopback.
    own = f"localhost:{registry.host.rsplit(':', 1)[1]}"
    repository = pushed.name.split("/", 1)[1]
    with redirector(f"http://{own}{{path}}") as server:
        client = _client(tmp_path, server.host, own)
        assert client.resolve(parse_reference(f"{own}/{repository}:v1")).layers
        with pytest.raises(UpstreamError, match=f"redirect refused: {own} is not an allowed"):
            _fetch_first_layer(client, server.host, pushed)


def test_policy_admitted_loopback_redirect_target_still_works(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with redirector(f"http://{registry.host}{{path}}") as server:
        client = _client(tmp_path, server.host, registry.host, registry_admitted=LOOPBACK_ADMITTED)
        path = _fetch_first_layer(client, server.host, pushed)
    assert path.stat().st_size == pushed.layer_sizes[0]


@pytest.mark.parametrize("realm_ip", ["169.254.169.254", "10.0.0.1", "127.0.0.2"])
def test_token_realm_on_a_private_address_is_refused_without_connecting(
    realm_ip: str, tmp_path: Path
) -> None:
    session = RecordingSession()
    with listener("127.0.0.2") as spy:
        realm = f"https://{realm_ip}:{spy.port}/token"
        with stalling_server(realm) as host:
            client = _client(tmp_path, host, session=session)
            t0 = time.monotonic()
            with pytest.raises(UpstreamError) as err:
                client.resolve(parse_reference(f"{host}/a:b"))
            elapsed = time.monotonic() - t0
        time.sleep(0.2)
        assert spy.accepted == 0
    assert elapsed < 2
    assert err.value.message == (
        f"registry {host}: token realm refused: {realm_ip}:{spy.port} is not an allowed host"
    )
    assert not [url for url in session.sent if realm_ip in url]


def test_basic_credentials_are_not_sent_to_a_foreign_realm(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, "bearer") as tokens, auth_proxy(registry.host, "bearer") as reg:
        # The registry names another host's token service as its realm; that
        # host is reachable (a policy admits loopback) but not configured to
        # receive this registry's password.
        reg.realm = f"http://{tokens.host}/token"
        ref = parse_reference(pushed.name.replace(registry.host, reg.host) + ":v1")
        client = _client(
            tmp_path,
            reg.host,
            tokens.host,
            credentials={reg.host: Credentials(USER, PASSWORD)},
            registry_admitted=LOOPBACK_ADMITTED,
        )
        with pytest.raises(UpstreamError) as err:
            client.resolve(ref)
        assert tokens.token_auth == []
        assert f"may not receive the credentials of {reg.host}" in err.value.message
        assert PASSWORD not in err.value.message

        # Configured for this registry, the same realm gets them and the pull works.
        allowed = Credentials(USER, PASSWORD, auth_hosts=frozenset({tokens.host}))
        client = _client(
            tmp_path,
            reg.host,
            tokens.host,
            credentials={reg.host: allowed},
            registry_admitted=LOOPBACK_ADMITTED,
        )
        assert client.resolve(ref).manifest_digest == pushed.manifest_digest
        assert tokens.token_auth and all(a and a.startswith("Basic ") for a in tokens.token_auth)


def test_bearer_token_is_not_sent_to_the_blob_host(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    with auth_proxy(registry.host, "open") as cdn, auth_proxy(registry.host, "bearer") as reg:
        reg.blob_redirect = f"http://{cdn.host}"
        client = _client(
            tmp_path,
            reg.host,
            cdn.host,
            credentials={reg.host: Credentials(USER, PASSWORD)},
            blob_hosts=frozenset({cdn.host}),
        )
        path = _fetch_first_layer(client, reg.host, pushed)
        assert path.stat().st_size == pushed.layer_sizes[0]
        assert any(a and a.startswith("Bearer ") for a in reg.seen_auth)
        assert cdn.seen_auth == [None]


def test_unreachable_messages_name_no_address_port_or_errno(tmp_path: Path) -> None:
    port = free_port()  # closed again: connections are refused
    host = f"localhost:{port}"
    client = _client(tmp_path, host)
    with pytest.raises(UpstreamError) as err:
        client.resolve(parse_reference(f"{host}/a:b"))
    assert err.value.message == f"registry {host} is unreachable"
    assert err.value.detail == {"registry": host, "reason": "unreachable"}
    text = f"{err.value.message} {err.value.detail}"
    for leak in ("127.0.0.1", "::1", "refused", "Errno", "Max retries", "NewConnection"):
        assert leak not in text


def test_a_closed_port_behind_a_redirect_is_not_named(pushed: Any, tmp_path: Path) -> None:
    closed = free_port()
    with redirector(f"http://127.0.0.1:{closed}{{path}}") as server:
        client = _client(
            tmp_path, server.host, f"127.0.0.1:{closed}", registry_admitted=LOOPBACK_ADMITTED
        )
        with pytest.raises(UpstreamError) as err:
            _fetch_first_layer(client, server.host, pushed)
    assert err.value.message == f"registry {server.host} is unreachable"
    assert str(closed) not in f"{err.value.message} {err.value.detail}"


def test_server_settings_wire_policies_lists_and_deadlines(
    registry: Any, pushed: Any, tmp_path: Path
) -> None:
    # The client the server builds: the dev policy admits loopback registries
    # on 127.0.0.1, the blob host list names 127.0.0.3:<port>; 127.0.0.2 is neither.
    with redirector(f"http://{registry.host}{{path}}") as to_registry:
        with listener("127.0.0.2") as spy, redirector(f"https://{spy.host}{{path}}") as to_spy:
            settings = load_settings(
                {
                    "ATTESTOR_DATA_DIR": str(tmp_path),
                    "ATTESTOR_POLICY_DIR": str(POLICIES),
                    "ATTESTOR_INSECURE_REGISTRIES": f"{to_registry.host},{to_spy.host},"
                    f"{registry.host}",
                    "ATTESTOR_REGISTRY_BLOB_HOSTS": "127.0.0.3:1234, cdn.example",
                    "ATTESTOR_REGISTRY_REQUEST_DEADLINE_S": "7",
                }
            )
            assert settings.registry_blob_hosts == {"127.0.0.3:1234", "cdn.example"}
            client = adapters_from_settings(settings).registry
            assert client.limits.request_deadline_s == 7
            assert _fetch_first_layer(client, to_registry.host, pushed).is_file()
            repository = pushed.name.split("/", 1)[1]
            with pytest.raises(UpstreamError, match=f"redirect refused: {spy.host} is not"):
                client.resolve(parse_reference(f"{to_spy.host}/{repository}:v1"))
            assert spy.accepted == 0
    for bad in ("https://cdn.example", "cdn.example/x", "u@cdn.example", "cdn.example:99999"):
        with pytest.raises(ConfigError, match="ATTESTOR_REGISTRY_BLOB_HOSTS|registry_blob_hosts"):
            load_settings({"ATTESTOR_DATA_DIR": str(tmp_path), "ATTESTOR_REGISTRY_BLOB_HOSTS": bad})


def test_a_tls_failure_is_one_fixed_message(registry: Any, tmp_path: Path) -> None:
    # The registry speaks plain HTTP: the handshake fails; OpenSSL's text stays in the log.
    client = _client(tmp_path)
    with pytest.raises(UpstreamError) as err:
        client.resolve(parse_reference(f"{registry.host}/a:b"))
    assert err.value.message == f"registry {registry.host}: TLS verification failed"
    assert err.value.detail == {"registry": registry.host, "reason": "tls"}
