# SPDX-License-Identifier: Apache-2.0
"""Attestation lookup: verify locally, check the manifest, ask for one, cache."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from agent.cache import AttestationCache
from agent.check import pinned_verifier
from agent.containerd import LayerInfo
from agent.integrity.attestation import (
    ServerAttestations,
    image_reference,
    statement_refs,
)
from agent.server import ServerKey
from attestor.digests import Digest, chain_ids
from attestor.errors import ConfigError, PolicyDenied, UpstreamError, VerificationError
from attestor.manifest import EntryType, FileManifest, ManifestEntry
from tests.unit.agent._integrity_sim import SimLayer, SimServer

IMAGE = "127.0.0.1:5000/sample/app"
IMAGE_DIGEST = Digest("sha256:" + "a" * 64)


def _d(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def manifest(content: bytes) -> FileManifest:
    return FileManifest.from_entries(
        [
            ManifestEntry("etc", EntryType.DIR, mode=0o755, uid=0, gid=0),
            ManifestEntry("etc/conf", EntryType.FILE, mode=0o644, uid=0, gid=0,
                          size=len(content), sha256=hashlib.sha256(content).hexdigest()),
        ]
    )  # fmt: skip


def sim_layers(n: int = 2) -> list[SimLayer]:
    return [
        SimLayer(_d(f"blob{i}"), _d(f"diff{i}"), "application/vnd.oci.image.layer.v1.tar+gzip",
                 manifest(f"v{i}".encode()))
        for i in range(n)
    ]  # fmt: skip


def infos(layers: list[SimLayer]) -> list[LayerInfo]:
    chains = chain_ids([Digest(x.diff_id) for x in layers])
    return [
        LayerInfo(i, Digest(x.digest), x.media_type, 1, Digest(x.diff_id), chains[i], None)
        for i, x in enumerate(layers)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def resolver(server: SimServer, cache: AttestationCache | None = None, clock: Clock | None = None):
    return ServerAttestations(
        server, pinned_verifier([server.server_key()]), cache=cache, clock=clock or Clock()
    )


def resolve(res: ServerAttestations, layer: LayerInfo):
    return res.resolve(layer, image_name=f"{IMAGE}:latest", image_digest=IMAGE_DIGEST)


def test_valid_attestation_gives_the_verified_manifest() -> None:
    server = SimServer()
    layers = sim_layers()
    refs = server.attest(layers)
    for info, layer, ref in zip(infos(layers), layers, refs, strict=True):
        got = resolve(resolver(server), info)
        assert got.status == "valid"
        assert got.attestation_id == ref.id and got.keyid == server.keyid
        assert got.manifest is not None and got.manifest.to_manifest() == layer.manifest


def test_signature_by_an_unpinned_key_is_bad_signature() -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers, signer=CryptoSigner.generate_ecdsa())
    got = resolve(resolver(server), infos(layers)[0])
    assert got.status == "bad-signature" and got.manifest is None
    assert got.reason


def test_statement_for_another_chain_is_not_accepted() -> None:
    server = SimServer()
    layers = sim_layers(2)
    server.attest(layers)
    top = infos(layers)[1]
    other_chain = LayerInfo(1, top.digest, top.media_type, 1, top.diff_id, Digest(_d("x")), None)
    got = resolve(resolver(server), other_chain)
    assert got.status == "bad-signature" and "chainID" in (got.reason or "")


def test_manifest_that_does_not_match_the_statement_is_refused() -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    sha = layers[0].manifest.sha256.removeprefix("sha256:")
    other = manifest(b"evil").canonical_bytes()
    server.manifests[sha] = other  # a server serving other bytes under the name
    got = resolve(resolver(server), infos(layers)[0])
    assert got.status == "bad-signature" and "manifest" in (got.reason or "")


def test_revoked_listing_is_revoked() -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers, status="revoked")
    got = resolve(resolver(server), infos(layers)[0])
    assert got.status == "revoked" and got.attestation_id is not None


def test_missing_attestation_is_requested_with_name_and_digest_only() -> None:
    server = SimServer()
    layers = sim_layers(2)
    server.issuable[IMAGE] = layers
    got = resolve(resolver(server), infos(layers)[0])
    assert server.requested == [f"{IMAGE}@{IMAGE_DIGEST}"]
    assert (
        got.status == "valid"
        and got.manifest is not None
        and got.manifest.to_manifest() == layers[0].manifest
    )


@pytest.mark.parametrize(
    "error",
    [
        PolicyDenied(
            "server: registry not allowed",
            detail={"reasons": ["registry 10.0.0.1 denied"], "status": 403},
        ),
        UpstreamError("server: registry unreachable", detail={"status": 502}),
    ],
)
def test_refused_or_failed_request_is_unattested_with_the_server_reason(error) -> None:
    server = SimServer(issue_error=error)
    layers = sim_layers(1)
    got = resolve(resolver(server), infos(layers)[0])
    assert got.status == "unattested"
    assert error.message in (got.reason or "")


def test_malformed_issue_answer_falls_back_to_the_listing() -> None:
    server = SimServer(malformed_answer=True)
    layers = sim_layers(1)
    server.issuable[IMAGE] = layers
    got = resolve(resolver(server), infos(layers)[0])
    assert got.status == "valid" and server.requested


def test_deferred_issuance_is_pending_and_not_asked_again_at_once() -> None:
    server = SimServer(defer=True)
    layers = sim_layers(1)
    clock = Clock()
    res = resolver(server, clock=clock)
    assert resolve(res, infos(layers)[0]).status == "pending"
    assert resolve(res, infos(layers)[0]).status == "pending"
    assert len(server.requested) == 1
    clock.now = 61
    resolve(res, infos(layers)[0])
    assert len(server.requested) == 2


def test_server_outage_falls_back_to_the_verified_cache(tmp_path: Path) -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    info = infos(layers)[0]
    with AttestationCache.open(tmp_path / "cache") as cache:
        assert resolve(resolver(server, cache), info).status == "valid"
    server.down = True
    with AttestationCache.open(tmp_path / "cache") as cache:  # survives a restart
        got = resolve(resolver(server, cache), info)
        assert (
            got.status == "valid"
            and got.manifest is not None
            and got.manifest.to_manifest() == layers[0].manifest
        )
    with AttestationCache.open(tmp_path / "empty") as cache:
        assert resolve(resolver(server, cache), info).status == "pending"


def test_cached_envelope_is_verified_again(tmp_path: Path) -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    info = infos(layers)[0]
    with AttestationCache.open(tmp_path / "cache") as cache:
        resolve(resolver(server, cache), info)
    server.down = True
    other = SimServer()  # same cache, but now another key is pinned
    with AttestationCache.open(tmp_path / "cache") as cache:
        res = ServerAttestations(
            server, pinned_verifier([other.server_key()]), cache=cache, clock=Clock()
        )
        assert resolve(res, info).status == "pending"


def test_results_are_remembered_until_refresh() -> None:
    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    clock = Clock()
    res = resolver(server, clock=clock)
    info = infos(layers)[0]
    assert resolve(res, info).status == "valid"
    for ref in server.refs[info.digest]:
        object.__setattr__(ref, "status", "revoked")
    assert resolve(res, info).status == "valid"
    clock.now = 301
    assert resolve(res, info).status == "revoked"


def test_statement_refs_requires_each_byproduct_once() -> None:
    with pytest.raises(VerificationError):
        statement_refs({"predicate": {"runDetails": {"byproducts": []}}})


def test_pinned_verifier_skips_revoked_keys_and_needs_one() -> None:
    key = SimServer().server_key()
    revoked = ServerKey(key.keyid, key.algorithm, key.public_key_pem, "revoked")
    with pytest.raises(ConfigError):
        pinned_verifier([revoked])
    assert pinned_verifier([key, revoked]) is not None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("127.0.0.1:5000/sample/app:latest", "127.0.0.1:5000/sample/app@D"),
        ("127.0.0.1:5000/sample/app", "127.0.0.1:5000/sample/app@D"),
        ("docker.io/library/busybox:1.36@sha256:" + "b" * 64, "docker.io/library/busybox@D"),
    ],
)
def test_image_reference(name: str, expected: str) -> None:
    assert image_reference(name, "D") == expected


def test_a_revocation_snapshot_makes_a_valid_layer_revoked() -> None:
    from attestor.revocation import Revocation, RevocationSet, SubjectTarget
    from tests.unit.agent._integrity_sim import T0

    server = SimServer()
    layers = sim_layers(1)
    server.attest(layers)
    info = infos(layers)[0]
    res = resolver(server)
    assert resolve(res, info).status == "valid"
    revoked = RevocationSet(
        [Revocation(id="r1", sequence=1, target=SubjectTarget(info.digest), reason="leaked",
                    actor="admin@example.test", created_at=T0)]
    )  # fmt: skip
    res.replace_verifier(pinned_verifier([server.server_key()], revocations=revoked))
    got = resolve(res, info)
    assert got.status == "revoked" and "leaked" in (got.reason or "")


def test_a_cached_manifest_is_parsed_without_holding_its_bytes(tmp_path: Path) -> None:
    # 4,000 files: about 0.6 MB of canonical bytes, about 0.35 MB in compact form.
    files = [
        ManifestEntry(f"d/f{i:05d}", EntryType.FILE, mode=0o644, uid=0, gid=0, size=i,
                      sha256=hashlib.sha256(b"%d" % i).hexdigest())
        for i in range(4000)
    ]  # fmt: skip
    big = FileManifest.from_entries([ManifestEntry("d", EntryType.DIR, mode=0o755, uid=0, gid=0)])
    big = FileManifest((*big.entries, *files))
    layer = SimLayer(_d("big"), _d("bigdiff"), sim_layers(1)[0].media_type, big)
    server = SimServer()
    server.attest([layer])
    info = infos([layer])[0]
    with AttestationCache.open(tmp_path / "cache") as cache:
        assert resolve(resolver(server, cache), info).status == "valid"
    server.down = True
    size = len(big.canonical_bytes())
    with AttestationCache.open(tmp_path / "cache") as cache:
        res = resolver(server, cache)
        tracemalloc.start()
        try:
            got = resolve(res, info)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert got.status == "valid" and got.manifest is not None
    assert got.manifest.sha256 == big.sha256 and len(got.manifest) == 4001
    # Reading the blob whole (as before) peaked at the bytes plus the compact form.
    assert peak < size, (peak, size)
