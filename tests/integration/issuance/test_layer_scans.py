# SPDX-License-Identifier: Apache-2.0
"""Re-issuance reuses earlier layer scans keyed by (blob, media type, chainID)."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from attestor.api._state import app_state
from attestor.digests import sha256_digest
from attestor.manifest import LAYER_READING_VERSION
from attestor.registry import RegistryClient
from attestor.services import _layer_signing
from attestor.store.models import AttestationModel, FileManifestModel
from tests.integration.issuance._images import _tar, push_layers
from tests.integration.issuance.conftest import Server


def _blob() -> tuple[bytes, str]:
    raw = _tar({"d/f.bin": os.urandom(512)})
    return gzip.compress(raw, mtime=0), sha256_digest(raw)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # A spy, not a fake: the real scan runs; we only count which layers it ran on.
    seen: list[str] = []
    real = _layer_signing.manifest_from_layer_blob

    def counting(blob: Any, media_type: str, **kwargs: Any) -> Any:
        result = real(blob, media_type, **kwargs)
        seen.append(str(result.diff_id))
        return result

    monkeypatch.setattr(_layer_signing, "manifest_from_layer_blob", counting)
    return seen


def _manifests(body: dict[str, Any]) -> list[str]:
    return [a["manifest"]["sha256"] for a in body["attestations"]]


def test_reissue_reuses_scans_only_at_the_same_chain_position(
    server: Server,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    scans: list[str],
) -> None:
    (a, a_diff), (b, b_diff) = _blob(), _blob()
    name = unique_name("scans")
    first = server.issue(push_layers(pusher, name, "ab", [(a, a_diff), (b, b_diff)]))
    assert first.status_code == 201
    assert scans == [a_diff, b_diff]

    # A new key forces a fresh issuance of the same image: nothing is rescanned.
    rotated = server.client.post(
        "/v1/keys/rotate", json={"algorithm": "ecdsa-p256"}, headers=server.admin
    )
    assert rotated.status_code == 201
    again = server.issue(f"{name}:ab")
    assert again.status_code == 201
    assert scans == [a_diff, b_diff]
    assert _manifests(again.get_json()) == _manifests(first.get_json())

    # Another image with the same layers in the same order: reused too.
    same_layers = server.issue(push_layers(pusher, name, "ab2", [(a, a_diff), (b, b_diff)]))
    assert same_layers.status_code == 201
    assert scans == [a_diff, b_diff]

    # B on its own has another chainID (no layer below): scanned again.
    alone = server.issue(push_layers(pusher, name, "b", [(b, b_diff)]))
    assert alone.status_code == 201
    assert scans == [a_diff, b_diff, b_diff]


def test_a_damaged_stored_manifest_is_not_reused(
    server: Server,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    scans: list[str],
) -> None:
    (a, a_diff) = _blob()
    name = unique_name("damaged")
    first = server.issue(push_layers(pusher, name, "a", [(a, a_diff)]))
    manifest_sha256 = _manifests(first.get_json())[0]
    with app_state(server.app).session_factory.begin() as session:
        session.execute(
            update(FileManifestModel)
            .where(FileManifestModel.sha256 == manifest_sha256)
            .values(body=b'{"entries":[]}')
        )
    server.client.post("/v1/keys/rotate", json={"algorithm": "ed25519"}, headers=server.admin)
    again = server.issue(f"{name}:a")
    assert again.status_code == 201
    assert scans == [a_diff, a_diff]
    assert _manifests(again.get_json()) == [manifest_sha256]


def test_scans_of_an_older_tar_reading_are_not_reused(
    server: Server,
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    scans: list[str],
) -> None:
    # Rows from before migration 0008 were read by CPython's tarfile, which can
    # miss entries containerd unpacks: their manifests must be read again.
    (a, a_diff) = _blob()
    name = unique_name("reading")
    first = server.issue(push_layers(pusher, name, "a", [(a, a_diff)]))
    assert first.status_code == 201
    with app_state(server.app).session_factory.begin() as session:
        marked = session.execute(
            update(AttestationModel)
            .where(
                AttestationModel.layer_digest
                == first.get_json()["attestations"][0]["layer"]["digest"]
            )
            .values(layer_reading=LAYER_READING_VERSION - 1)
        )
        assert marked.rowcount == 1
    server.client.post("/v1/keys/rotate", json={"algorithm": "ed25519"}, headers=server.admin)
    again = server.issue(f"{name}:a")
    assert again.status_code == 201
    assert scans == [a_diff, a_diff]
    with app_state(server.app).session_factory() as session:
        versions = session.scalars(
            select(AttestationModel.layer_reading).where(
                AttestationModel.layer_digest
                == first.get_json()["attestations"][0]["layer"]["digest"]
            )
        ).all()
    assert sorted(versions) == [LAYER_READING_VERSION - 1, LAYER_READING_VERSION]
