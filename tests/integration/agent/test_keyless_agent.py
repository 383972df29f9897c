# SPDX-License-Identifier: Apache-2.0
"""The agent verifies keyless layers from the server's bundles, against trust pinned
on the node (the local @sigstore/mock stack), over real HTTP."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from agent.cache import AttestationCache
from agent.config import AgentConfig
from agent.containerd import LayerInfo
from agent.integrity.attestation import NO_KEYLESS_TRUST, ServerAttestations
from agent.server import ServerClient, fetch_bundle
from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.digests import Digest, chain_ids
from attestor.jobs.runner import InlineRunner
from attestor.services.signers import keyless_keyid
from attestor.store import tokens as token_store
from attestor.verify import TrustedKey, Verifier
from tests.conftest import REPO_ROOT
from tests.harness.sigstore_stack import SigstoreStack
from tests.integration.issuance._images import Pushed, client_for, push

IDENTITY = "https://kubernetes.io/namespaces/attestor/serviceaccounts/attestor-server"
ISSUER = "https://oidc.attestor.test"

pytestmark = pytest.mark.timeout(120)


@dataclass
class Live:
    url: str
    agent: str


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, registry: Any, sigstore_stack: SigstoreStack
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("keyless-agent")
    policies = root / "policies"
    policies.mkdir()
    shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    token = root / "token"
    token.write_text(sigstore_stack.mint_token(IDENTITY, ISSUER))
    settings = load_settings(
        {
            "ATTESTOR_DATA_DIR": str(root / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry.host,
            "ATTESTOR_POLICY_DIR": str(policies),
            "ATTESTOR_SIGNING_MODE": "keyless",
            "ATTESTOR_KEYLESS_INSTANCE": "custom",
            "ATTESTOR_KEYLESS_TRUST_CONFIG": str(sigstore_stack.client_trust_config_path),
            "ATTESTOR_KEYLESS_TOKEN_FILE": str(token),
            "ATTESTOR_KEYLESS_FORCE_TLOG_VERSION": "1",
        }
    )
    app = create_app(settings, overrides={"TESTING": True})
    state = app_state(app)
    with state.session_factory.begin() as s:
        agent, _ = token_store.create_token(s, role="agent", agent_id="node-1", now=state.clock())
        pipeline, _ = token_store.create_token(s, role="pipeline", now=state.clock())
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        pusher = client_for(registry.host, root / "push")
        image = push(pusher, f"{registry.host}/keyless-agent/app", "v1", layers=2)
        issued = app.test_client().post(
            "/v1/attestations",
            json={"image": image.by_tag},
            headers={"Authorization": f"Bearer {pipeline}"},
        )
        assert issued.status_code == 201, issued.get_json()
        live_image.append(image)
        yield Live(f"http://127.0.0.1:{srv.server_port}", agent)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


live_image: list[Pushed] = []


def _layers(image: Pushed) -> list[LayerInfo]:
    chains = chain_ids([Digest(d) for d in image.diff_ids])
    return [
        LayerInfo(i, Digest(digest), "application/vnd.oci.image.layer.v1.tar+gzip", 1,
                  Digest(image.diff_ids[i]), chains[i], None)
        for i, digest in enumerate(image.layer_digests)
    ]  # fmt: skip


def _unrelated_pinned_key() -> Verifier:
    # The pinned server keys play no part in keyless verification.
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Verifier(keys=[TrustedKey.from_pem(pem)])


def _resolve(
    live: Live, tmp_path: Path, cache: AttestationCache | None = None, **keyless: Any
) -> list[Any]:
    config = AgentConfig(
        containerd_address="/run/containerd.sock", namespaces=("k8s.io",), state_dir=tmp_path,
        **keyless,
    )  # fmt: skip
    image = live_image[0]
    client = ServerClient(live.url, live.agent, timeout=30)
    try:
        trust = config.keyless_trust(lambda i: fetch_bundle(client, i))
        res = ServerAttestations(
            client, _unrelated_pinned_key(), cache=cache, clock=lambda: 0.0, keyless=trust
        )
        return [
            res.resolve(layer, image_name=image.by_tag, image_digest=Digest(image.manifest_digest))
            for layer in _layers(image)
        ]
    finally:
        client.close()


def test_keyless_layers_verify_with_the_pinned_identity(
    live: Live, tmp_path: Path, sigstore_stack: SigstoreStack
) -> None:
    pinned = {
        "keyless_trusted_root": sigstore_stack.client_trust_config_path,
        "keyless_identity": IDENTITY,
        "keyless_issuer": ISSUER,
    }
    with AttestationCache.open(tmp_path / "cache") as cache:
        got = _resolve(live, tmp_path, cache, **pinned)
        assert [g.status for g in got] == ["valid", "valid"], [g.reason for g in got]
        for g in got:
            assert g.keyid == keyless_keyid(ISSUER, IDENTITY)
            assert g.manifest is not None and g.envelope_sha256
        # Server gone: the cached bundle is verified again, from the cache alone.
        offline = _resolve(Live("http://127.0.0.1:9", live.agent), tmp_path, cache, **pinned)
        assert [g.status for g in offline] == ["valid", "valid"]
        assert [g.manifest.sha256 for g in offline if g.manifest] == [
            g.manifest.sha256 for g in got if g.manifest
        ]
        assert all("from cache" in (g.reason or "") for g in offline)


def test_another_identity_or_no_trust_is_bad_signature(
    live: Live, tmp_path: Path, sigstore_stack: SigstoreStack
) -> None:
    wrong = _resolve(
        live, tmp_path,
        keyless_trusted_root=sigstore_stack.trusted_root_path,
        keyless_identity="https://someone.else/", keyless_issuer=ISSUER,
    )  # fmt: skip
    assert [g.status for g in wrong] == ["bad-signature", "bad-signature"]
    assert all(g.manifest is None and g.reason for g in wrong), [g.reason for g in wrong]
    assert "someone.else" in str([g.reason for g in wrong])
    untrusted = _resolve(live, tmp_path)
    assert [g.reason for g in untrusted] == [NO_KEYLESS_TRUST, NO_KEYLESS_TRUST]
