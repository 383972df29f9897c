# SPDX-License-Identifier: Apache-2.0
"""Keyless attestations on the agent: trust pinned locally, bundle verified, else refused."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.check import pinned_verifier
from agent.cli import main
from agent.config import AgentConfig
from agent.integrity.attestation import (
    NO_KEYLESS_TRUST,
    KeylessTrust,
    ServerAttestations,
)
from attestor.digests import KeyId
from attestor.errors import ConfigError
from attestor.sigstore_internals import embedded_trust_file
from attestor.verify.bundle import BundleVerifier, CertificateIdentity
from attestor.verify.trust import public_good
from tests.unit.agent._integrity_sim import SimServer
from tests.unit.agent.test_integrity_attestation import (
    IMAGE,
    IMAGE_DIGEST,
    Clock,
    infos,
    sim_layers,
)

KEYLESS_ID = KeyId("keyless:" + "b" * 64)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _keyless_server() -> tuple[SimServer, list]:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    for digest, refs in server.refs.items():
        server.refs[digest] = [dataclasses.replace(r, keyid=KEYLESS_ID) for r in refs]
    return server, layers


def _resolve(res: ServerAttestations, layers: list):
    return res.resolve(infos(layers)[0], image_name=f"{IMAGE}:latest", image_digest=IMAGE_DIGEST)


def test_keyless_without_trust_is_bad_signature_with_the_reason() -> None:
    server, layers = _keyless_server()
    res = ServerAttestations(server, pinned_verifier([server.server_key()]), clock=Clock())
    got = _resolve(res, layers)
    assert got.status == "bad-signature"
    assert got.reason == NO_KEYLESS_TRUST == "keyless attestation and no keyless trust configured"
    assert got.keyid == KEYLESS_ID and got.manifest is None


def test_keyless_bundle_that_does_not_verify_is_bad_signature() -> None:
    server, layers = _keyless_server()
    asked: list[str] = []

    def fetch(attestation_id: str) -> bytes:
        asked.append(attestation_id)
        # A DSSE envelope is not a bundle: the bundle check must refuse it.
        return server.envelopes[attestation_id]

    trust = KeylessTrust(
        verifier=BundleVerifier(public_good("production")),
        identity=CertificateIdentity("ci@example.com", "https://issuer.example"),
        fetch_bundle=fetch,
        now=lambda: NOW,
    )
    res = ServerAttestations(
        server, pinned_verifier([server.server_key()]), clock=Clock(), keyless=trust
    )
    got = _resolve(res, layers)
    assert got.status == "bad-signature" and got.manifest is None
    assert got.reason and "mediaType" in got.reason
    assert asked == [server.refs[layers[0].digest][0].id]


def test_key_signed_layers_still_verify_with_keyless_trust_configured() -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    trust = KeylessTrust(
        verifier=BundleVerifier(public_good("production")),
        identity=CertificateIdentity("ci@example.com", "https://issuer.example"),
        fetch_bundle=lambda _: pytest.fail("a key-signed layer must not fetch a bundle"),
        now=lambda: NOW,
    )
    res = ServerAttestations(
        server, pinned_verifier([server.server_key()]), clock=Clock(), keyless=trust
    )
    assert _resolve(res, layers).status == "valid"


def _config(tmp_path: Path, **kw: object) -> AgentConfig:
    return AgentConfig(containerd_address="/run/c.sock", namespaces=("k8s.io",),
                       state_dir=tmp_path, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_config_without_keyless_gives_no_trust(tmp_path: Path) -> None:
    assert _config(tmp_path).keyless_trust(lambda _: b"") is None


@pytest.mark.parametrize(
    "kw",
    [
        {"keyless_instance": "production"},
        {"keyless_identity": "a@b", "keyless_issuer": "https://i"},
        {"keyless_instance": "production", "keyless_identity": "a@b"},
        {"keyless_instance": "staging", "keyless_trusted_root": Path("/x"),
         "keyless_identity": "a@b", "keyless_issuer": "https://i"},
        {"keyless_instance": "elsewhere", "keyless_identity": "a@b", "keyless_issuer": "https://i"},
    ],
)  # fmt: skip
def test_incomplete_or_ambiguous_keyless_config_is_refused(
    tmp_path: Path, kw: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        _config(tmp_path, **kw)


def test_instance_and_file_roots_load(tmp_path: Path) -> None:
    pinned = {"keyless_identity": "a@b", "keyless_issuer": "https://i"}
    trust = _config(tmp_path, keyless_instance="staging", **pinned).keyless_trust(lambda _: b"")
    assert trust is not None and trust.identity == CertificateIdentity("a@b", "https://i")
    embedded = embedded_trust_file("production", "trusted_root.json")
    root = tmp_path / "trusted_root.json"
    root.write_bytes(embedded)
    assert _config(tmp_path, keyless_trusted_root=root, **pinned).keyless_trust(lambda _: b"")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json"}))
    with pytest.raises(ConfigError, match="keyless trusted root"):
        _config(tmp_path, keyless_trusted_root=bad, **pinned).keyless_trust(lambda _: b"")
    with pytest.raises(ConfigError, match="cannot read"):
        _config(tmp_path, keyless_trusted_root=tmp_path / "no", **pinned).keyless_trust(
            lambda _: b""
        )


def test_cli_reads_keyless_flags_and_env_and_refuses_half_a_config() -> None:
    result = CliRunner().invoke(
        main,
        ["check", "--once", "--keyless-instance", "production"],
        env={"ATTESTOR_AGENT_KEYLESS_IDENTITY": "a@b"},
    )
    assert result.exit_code == 2
    assert "ConfigError" in result.output and "--keyless-issuer" in result.output
