# SPDX-License-Identifier: Apache-2.0
"""A request thread never decompresses more than the inline budget of new layer bytes.

The image manifest's layer sizes are the attacker's to write, and a small
compressed blob can expand a thousandfold or more, so the request counts the
bytes it actually decompresses: past ``ATTESTOR_ISSUE_INLINE_SCAN_BYTES``
the image becomes a job (202), whatever the declared sizes say.
"""

from __future__ import annotations

import io
import socket
import tarfile
from collections.abc import Callable
from typing import Any

import pytest
import zstandard

from attestor.api._state import app_state
from attestor.digests import sha256_digest
from attestor.registry import RegistryClient
from attestor.registry.media_types import OCI_LAYER_ZSTD
from attestor.services import _layer_signing
from tests.integration.issuance._images import push_layers
from tests.integration.issuance.conftest import Server

MIB = 1 << 20


def _zeros_layer(size: int) -> tuple[bytes, str]:
    """A zstd layer with one zero-filled file of ``size`` bytes: a few KiB on the wire."""
    info = tarfile.TarInfo("zeros.bin")
    info.size = size
    info.mode = 0o644
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(bytes(size)))
    raw = out.getvalue()
    return zstandard.ZstdCompressor().compress(raw), sha256_digest(raw)


def _push(client: RegistryClient, name: str, blob: bytes, diff_id: str) -> str:
    return push_layers(client, name, "v1", [(blob, diff_id)], media_type=OCI_LAYER_ZSTD)


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    # A spy, not a fake: the real scan runs; we record how each call ended.
    seen: list[tuple[str, int]] = []
    real = _layer_signing.manifest_from_layer_blob

    def spy(blob: Any, media_type: str, **kwargs: Any) -> Any:
        try:
            result = real(blob, media_type, **kwargs)
        except Exception as e:
            seen.append((type(e).__name__, kwargs.get("budget") or 0))
            raise
        seen.append((str(result.diff_id), result.uncompressed_size))
        return result

    monkeypatch.setattr(_layer_signing, "manifest_from_layer_blob", spy)
    return seen


def test_a_small_blob_that_expands_past_the_budget_becomes_a_job(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    # 24 MiB of zeros in ~1 KiB of zstd: declared far below every download
    # threshold, so the request thread used to decompress and hash it all.
    blob, diff_id = _zeros_layer(24 * MIB)
    assert len(blob) < 4096
    server = make_server()
    image = _push(pusher, unique_name("expands"), blob, diff_id)
    counts = server.counts()

    accepted = server.issue(image)

    assert accepted.status_code == 202, accepted.get_json()
    assert server.counts() == counts  # nothing half-stored by the request
    app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]
    done = server.get(accepted.get_json()["job"]["url"]).get_json()
    assert done["status"] == "finished", done
    [attestation] = done["result"]["attestations"]
    assert attestation["layer"]["diff_id"] == diff_id
    assert server.counts() == (counts[0] + 1, counts[1] + 1, counts[2] + 1)


def test_the_request_stops_reading_at_the_budget(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    scanned: list[tuple[str, int]],
) -> None:
    blob, diff_id = _zeros_layer(24 * MIB)
    budget = 2 * MIB
    server = make_server(env={"ATTESTOR_ISSUE_INLINE_SCAN_BYTES": str(budget)})
    image = _push(pusher, unique_name("stops"), blob, diff_id)

    assert server.issue(image).status_code == 202
    app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]

    # The request's scan stopped at its budget; the job's read the whole layer.
    assert scanned == [("ScanBudgetExceeded", budget), (diff_id, scanned[1][1])]
    assert scanned[1][1] > 24 * MIB


def test_a_layer_scanned_before_is_reused_inline_whatever_its_size(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
    scanned: list[tuple[str, int]],
) -> None:
    blob, diff_id = _zeros_layer(24 * MIB)
    server = make_server()
    image = _push(pusher, unique_name("reused"), blob, diff_id)
    assert server.issue(image).status_code == 202
    app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]
    rotated = server.client.post(
        "/v1/keys/rotate", json={"algorithm": "ecdsa-p256"}, headers=server.admin
    )
    assert rotated.status_code == 201

    again = server.issue(image)

    # Signed in the request, from the stored scan: nothing decompressed again.
    assert again.status_code == 201, again.get_json()
    assert [what for what, _ in scanned] == ["ScanBudgetExceeded", diff_id]
    assert again.get_json()["attestations"][0]["layer"]["diff_id"] == diff_id


def test_a_small_image_is_still_signed_in_the_request(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    blob, diff_id = _zeros_layer(MIB)
    server = make_server()
    issued = server.issue(_push(pusher, unique_name("small"), blob, diff_id))
    assert issued.status_code == 201, issued.get_json()
    assert issued.get_json()["attestations"][0]["layer"]["diff_id"] == diff_id


def _dead_redis_url() -> str:
    # A port nothing listens on: like a stopped Redis, connections are refused.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_without_a_queue_an_image_past_the_budget_is_503_not_scanned_in_the_request(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    blob, diff_id = _zeros_layer(24 * MIB)
    server = make_server(env={"REDIS_URL": _dead_redis_url()})
    image = _push(pusher, unique_name("noqueue"), blob, diff_id)
    counts = server.counts()

    refused = server.issue(image)

    assert refused.status_code == 503, refused.get_json()
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert server.counts() == counts


def test_a_zstd_bomb_becomes_a_job_that_fails_as_too_large(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    # 64 KiB of zstd that decompresses to 2 GiB; the diffID is never reached.
    frame = zstandard.ZstdCompressor().compress(bytes(64 * MIB))
    small, diff_id = _zeros_layer(2)
    bomb = small + frame * 32
    assert len(bomb) < 80 * 1024
    server = make_server()
    counts = server.counts()

    accepted = server.issue(_push(pusher, unique_name("bomb"), bomb, diff_id))

    assert accepted.status_code == 202, accepted.get_json()
    app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]
    done = server.get(accepted.get_json()["job"]["url"]).get_json()
    assert done["status"] == "failed"
    assert done["error"].startswith("TooLarge: layer expands"), done["error"]
    assert "more than 1100:1" in done["error"]
    assert server.counts() == counts


def test_the_expansion_ratio_is_a_setting(
    make_server: Callable[..., Server],
    pusher: RegistryClient,
    unique_name: Callable[[str], str],
) -> None:
    # A legitimate zstd layer that is almost all zeros (a 160 MiB swap file)
    # expands about 30,000:1: refused by default, attested when allowed.
    blob, diff_id = _zeros_layer(160 * MIB)
    strict = make_server()
    lenient = make_server(env={"ATTESTOR_LAYER_MAX_EXPANSION_RATIO": "100000"})
    image = _push(pusher, unique_name("swap"), blob, diff_id)
    outcomes = []
    for server in (strict, lenient):
        accepted = server.issue(image)
        assert accepted.status_code == 202, accepted.get_json()
        app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]
        outcomes.append(server.get(accepted.get_json()["job"]["url"]).get_json())
    assert outcomes[0]["status"] == "failed"
    assert "more than 1100:1" in outcomes[0]["error"]
    assert outcomes[1]["status"] == "finished", outcomes[1]
    assert outcomes[1]["result"]["attestations"][0]["layer"]["diff_id"] == diff_id
