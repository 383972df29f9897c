# SPDX-License-Identifier: Apache-2.0
"""Each bad input is a clear problem+json and leaves the database unchanged."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attestor.policy import load_policies
from attestor.registry import BlobCache, RegistryClient
from attestor.services import policies as policy_service
from attestor.services.context import IssuanceAdapters
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server

PROBLEM = "application/problem+json"


def _refused(server: Server, image: str, status: int, slug: str) -> dict[str, Any]:
    counts = server.counts()
    response = server.issue(image)
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == PROBLEM
    assert body["type"] == f"urn:attestor:problem:{slug}"
    assert body["detail"]
    assert server.counts() == counts
    return body


class _Listener:
    """A TCP port that accepts and counts connections but never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    silent = _Listener()
    yield silent
    silent.close()


def _short_timeout(server: Server, host: str, tmp_path: Path) -> None:
    # The app's adapters with a 0.5 s registry timeout instead of 30 s.
    state = server.app.extensions["attestor"]
    cache = BlobCache(tmp_path / "blobs-timeout")
    server.app.extensions["attestor.issuance"] = IssuanceAdapters(
        registry=RegistryClient(insecure_registries=frozenset({host}), cache=cache, timeout=0.5),
        cache=cache,
        policies=load_policies(state.settings.policy_dir),
    )


def test_unparseable_reference(server: Server) -> None:
    for bad in ("not a reference", "busybox:latest", "127.0.0.1:5000/UPPER:tag"):
        _refused(server, bad, 400, "invalid-input")


def test_registry_not_admitted_is_never_contacted(
    make_server: Callable[..., Server], listener: _Listener, tmp_path: Path
) -> None:
    server = make_server()
    state = server.app.extensions["attestor"]
    # Admit only one repository of the loopback registry (a new version of the
    # policy imported from the policy directory at start).
    document = (
        b'apiVersion: attestor.dev/v1alpha1\nkind: Policy\nid: dev\nversion: "only-allowed"\n'
        b'registries:\n  - host: "127.0.0.1:*"\n    repositories: ["allowed/*"]\n'
        b"    require_signatures: false\n"
    )
    with state.session_factory.begin() as session:
        policy_service.apply(session, document, actor="test", now=state.clock(), source="test")
    body = _refused(server, f"{listener.host}/denied/app:1", 403, "policy-denied")
    assert "denied/app" in body["detail"] and body["reasons"]
    assert listener.accepted == 0


def test_unreachable_registry(server: Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    body = _refused(server, f"127.0.0.1:{port}/app/x:1", 502, "upstream-error")
    assert "unreachable" in body["detail"]


def test_registry_timeout(server: Server, listener: _Listener, tmp_path: Path) -> None:
    _short_timeout(server, listener.host, tmp_path)
    body = _refused(server, f"{listener.host}/app/x:1", 504, "upstream-timeout")
    assert "timed out" in body["detail"] and body["reason"] == "timeout"
    assert listener.accepted >= 1


def test_corrupt_blob_on_registry_disk(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str], blob_file: Any
) -> None:
    image = push(pusher, unique_name("corrupt"), "v1")
    data = blob_file(image.layer_digests[1])
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    body = _refused(server, image.by_tag, 502, "upstream-error")
    assert image.layer_digests[1] in body["detail"]
    assert body["expected"] == image.layer_digests[1]


def test_missing_blob(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str], blob_file: Any
) -> None:
    image = push(pusher, unique_name("missing"), "v1")
    blob_file(image.layer_digests[0]).unlink()
    body = _refused(server, image.by_tag, 502, "upstream-error")
    assert "missing blob" in body["detail"]


def test_diff_id_mismatch(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    image = push(pusher, unique_name("diffid"), "v1", wrong_diff_id=True)
    body = _refused(server, image.by_tag, 422, "verification-failed")
    assert body["actual"] == image.diff_ids[0] and body["layer_index"] == 0


def test_not_an_image(
    server: Server, pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    image = push(
        pusher,
        unique_name("artifact"),
        "v1",
        config_media_type="application/vnd.cncf.helm.config.v1+json",
    )
    _refused(server, image.by_tag, 400, "invalid-input")


def test_unknown_manifest_is_not_found(server: Server, unique_name: Callable[[str], str]) -> None:
    _refused(server, unique_name("nothing") + ":v1", 404, "not-found")


def test_oversize_manifest_and_config(
    make_server: Callable[..., Server], pusher: RegistryClient, unique_name: Callable[[str], str]
) -> None:
    image = push(pusher, unique_name("big"), "v1", config_padding=20_000)
    small_manifest = make_server(env={"ATTESTOR_MAX_MANIFEST_BYTES": "300"})
    body = _refused(small_manifest, image.by_tag, 413, "too-large")
    assert "manifest" in body["detail"]
    small_config = make_server(env={"ATTESTOR_MAX_CONFIG_BYTES": "10000"})
    body = _refused(small_config, image.by_tag, 413, "too-large")
    assert "config" in body["detail"]


def test_schema_errors(server: Server) -> None:
    response = server.client.post("/v1/attestations", json={"img": "x"}, headers=server.pipeline)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert server.get("/v1/manifests/sha256:zz").status_code == 400
    missing = "sha256:" + "0" * 64
    assert server.get(f"/v1/manifests/{missing}").status_code == 404
    assert server.get("/v1/attestations/nope").status_code == 404
    assert server.get("/v1/attestations/nope/envelope").status_code == 404
