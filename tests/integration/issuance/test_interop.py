# SPDX-License-Identifier: Apache-2.0
"""The SERVER's envelopes and bundles pass openssl, @sigstore/verify and cosign's checks
with the public key from GET /v1/keys; one flipped byte fails all three."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestor.registry import RegistryClient
from tests.integration.issuance._images import push
from tests.integration.issuance.conftest import Server
from tests.interop.checks import cosign_checks, openssl_verify_envelope, sigstore_js_verify_bundle

pytestmark = pytest.mark.timeout(120)


def _flip(b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _checks(
    envelope: dict[str, Any], bundle: dict[str, Any], pem: str, sha: str, tmp: Path
) -> list[bool]:
    return [
        openssl_verify_envelope(envelope, pem, tmp),
        sigstore_js_verify_bundle(bundle, pem),
        cosign_checks(envelope, pem, sha),
    ]


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_server_outputs_interoperate(
    algorithm: str,
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    server = make_server()
    rotated = server.client.post(
        "/v1/keys/rotate", json={"algorithm": algorithm}, headers=server.admin
    )
    assert rotated.status_code == 201
    key = server.active_key()
    assert key["keyid"] == rotated.get_json()["keyid"] and key["algorithm"] == algorithm
    image = push(pusher, unique_name(f"interop-{algorithm}-"), "v1", layers=1)
    item = server.issue(image.by_digest).get_json()["attestations"][0]
    envelope = server.get(item["envelope_url"]).get_json()
    bundle = server.get(item["bundle_url"]).get_json()
    layer_sha = image.layer_digests[0][7:]
    pem = key["public_key_pem"]
    assert _checks(envelope, bundle, pem, layer_sha, tmp_path / "ok") == [True, True, True]

    for field, index in (("payload", 40), ("sig", -1)):
        bad_env = copy.deepcopy(envelope)
        bad_bundle = copy.deepcopy(bundle)
        if field == "payload":
            bad_env["payload"] = _flip(envelope["payload"], index)
            bad_bundle["dsseEnvelope"]["payload"] = bad_env["payload"]
        else:
            bad_env["signatures"][0]["sig"] = _flip(envelope["signatures"][0]["sig"], index)
            bad_bundle["dsseEnvelope"]["signatures"][0]["sig"] = bad_env["signatures"][0]["sig"]
        assert _checks(bad_env, bad_bundle, pem, layer_sha, tmp_path / field) == [False] * 3
