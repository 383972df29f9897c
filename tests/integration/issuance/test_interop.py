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


def _verify_bundle_cli(bundle: dict[str, Any], pem: str, digest: str, tmp: Path, *flags: str):
    import json

    from click.testing import CliRunner

    from attestor.cli.verify_bundle import command

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "bundle.json").write_text(json.dumps(bundle))
    (tmp / "cosign.pub").write_text(pem)
    args = ["--bundle", str(tmp / "bundle.json"), "--key", str(tmp / "cosign.pub"), *flags, digest]
    return CliRunner().invoke(command, args)


def test_verify_bundle_cli_accepts_our_bundles_only_without_tlog_by_request(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    server = make_server()
    image = push(pusher, unique_name("cli-"), "v1", layers=1)
    item = server.issue(image.by_digest).get_json()["attestations"][0]
    bundle = server.get(item["bundle_url"]).get_json()
    pem = server.active_key()["public_key_pem"]
    digest = image.layer_digests[0]

    ok = _verify_bundle_cli(bundle, pem, digest, tmp_path / "ok", "--insecure-ignore-tlog")
    assert ok.exit_code == 0, ok.output
    # Without the flag a log entry is required, and our key-signed bundles have none.
    strict = _verify_bundle_cli(bundle, pem, digest, tmp_path / "strict")
    assert strict.exit_code == 1 and "transparency log" in strict.output
    wrong = _verify_bundle_cli(
        bundle, pem, "sha256:" + "0" * 64, tmp_path / "wrong", "--insecure-ignore-tlog"
    )
    assert wrong.exit_code == 1
    bad = copy.deepcopy(bundle)
    bad["dsseEnvelope"]["signatures"][0]["sig"] = _flip(
        bad["dsseEnvelope"]["signatures"][0]["sig"], -1
    )
    tampered = _verify_bundle_cli(bad, pem, digest, tmp_path / "bad", "--insecure-ignore-tlog")
    assert tampered.exit_code == 1
