# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import InvalidInput, PolicyDenied
from attestor.policy import parse_policy
from attestor.policy.model import PolicySet
from attestor.registry import BlobCache, RegistryClient
from attestor.services import keys
from attestor.services.issuance import (
    IssuanceContext,
    IssueRequest,
    IssueResult,
    issue_image,
    result_document,
)
from attestor.services.signers import KeySigner
from attestor.store import attestations as attestation_store
from attestor.store.attestations import AttestationRow
from tests.unit.services.conftest import NOW


class NoNetwork(requests.Session):
    """A real session that refuses to send anything (and counts attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.attempts += 1
        raise AssertionError("issuance contacted a registry")


POLICY = b"""
apiVersion: attestor.dev/v1alpha1
kind: Policy
id: only-allowed
version: "3"
registries:
  - host: "registry.example.com:443"
    repositories: ["allowed/*"]
    require_signatures: false
"""


@pytest.fixture
def network() -> NoNetwork:
    return NoNetwork()


@pytest.fixture
def ctx(
    factory: sessionmaker[Session], tmp_path: Path, network: NoNetwork
) -> Iterator[IssuanceContext]:
    cache = BlobCache(tmp_path / "blobs")
    with factory.begin() as s:
        keys.rotate_key(s, keys_dir=tmp_path / "keys", algorithm="ecdsa-p256", now=NOW)
        active = keys.active_signer(s)
    yield IssuanceContext(
        registry=RegistryClient(insecure_registries=frozenset(), cache=cache, session=network),
        cache=cache,
        policies=PolicySet((parse_policy(POLICY),), source="test"),
        session_factory=factory,
        signer=KeySigner(signer=active.signer, keyid=active.keyid),
        builder_id="https://attestor.test/builder",
    )


def test_policy_is_applied_before_any_network_io(ctx: IssuanceContext, network: NoNetwork) -> None:
    for image in (
        "registry.example.com:443/denied/app:1",
        "other.example.com/allowed/app@sha256:" + "a" * 64,
    ):
        with pytest.raises(PolicyDenied) as e:
            issue_image(ctx, IssueRequest(image=image), now=lambda: NOW)
        assert e.value.detail["reasons"]
    assert network.attempts == 0


def test_unparseable_reference(ctx: IssuanceContext, network: NoNetwork) -> None:
    with pytest.raises(InvalidInput):
        issue_image(ctx, IssueRequest(image="no host/x"), now=lambda: NOW)
    assert network.attempts == 0


def test_result_document_shape() -> None:
    row = AttestationRow(
        id="a1",
        layer_index=0,
        layer_digest="sha256:" + "1" * 64,
        layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id="sha256:" + "2" * 64,
        chain_id="sha256:" + "2" * 64,
        parent_id=None,
        envelope=b"{}",
        envelope_sha256="3" * 64,
        keyid="k",
        policy_id="dev",
        policy_version="1",
        manifest_sha256="sha256:" + "4" * 64,
        tree_digest="sha256:" + "5" * 64,
        invocation_id="urn:uuid:x",
        image_id="i1",
        registry="127.0.0.1:5000",
        repository="app",
        manifest_digest="sha256:" + "6" * 64,
        status="valid",
        created_at=NOW,
        pae_sha256="7" * 64,
    )
    result = IssueResult(
        created=True,
        reference="127.0.0.1:5000/app:1",
        name="127.0.0.1:5000/app",
        digest=row.manifest_digest,
        tag="1",
        attestations=(row,),
    )
    assert result_document(result) == {
        "image": {"reference": "127.0.0.1:5000/app:1", "digest": row.manifest_digest, "tag": "1"},
        "attestations": [
            {
                "id": "a1",
                "image": {
                    "registry": "127.0.0.1:5000",
                    "repository": "app",
                    "digest": row.manifest_digest,
                },
                "keyid": "k",
                "layer": {"index": 0, "digest": row.layer_digest, "diff_id": row.diff_id},
                "status": "valid",
                "envelope_url": "/v1/attestations/a1/envelope",
                "bundle_url": "/v1/attestations/a1/bundle",
                "manifest": {
                    "sha256": row.manifest_sha256,
                    "tree_digest": row.tree_digest,
                    "url": f"/v1/manifests/{row.manifest_sha256}",
                },
            }
        ],
    }


def test_listing_rejects_bad_paging(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        assert attestation_store.list_attestations(s) == ([], None)
        with pytest.raises(InvalidInput):
            attestation_store.list_attestations(s, cursor="!!notours")
        with pytest.raises(InvalidInput):
            attestation_store.list_attestations(s, limit=0)
        with pytest.raises(InvalidInput):
            attestation_store.list_attestations(s, status="maybe")
