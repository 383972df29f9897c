# SPDX-License-Identifier: Apache-2.0
"""Partial sweeps (the inotify watch's): only changed directories are re-checked.

Real snapshot-like directories on disk, real checkers and ledger; only the
attestation source is a fake (a fixed layer -> manifest table).
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.containerd import LayerInfo
from agent.containerd.types import TaskStatus
from agent.integrity.attestation import LayerAttestation
from agent.integrity.drift import UpperChecker
from agent.integrity.inventory import TrackedContainer
from agent.integrity.layers import LayerChecker
from agent.integrity.ledger import Ledger
from agent.integrity.sweep import Sweeper, SweepResult
from attestor.digests import Digest
from attestor.manifest import FileManifest, manifest_from_snapshot

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def digest(name: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


class Attestations:
    """The ``AttestationSource`` protocol over a fixed table (every layer valid)."""

    def __init__(self) -> None:
        self.manifests: dict[Digest, FileManifest] = {}

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation:
        return LayerAttestation(layer.digest, "valid", manifest=self.manifests[layer.digest])


class Node:
    """Lower layers and containers laid out under ``root``, as containerd would."""

    def __init__(self, root: Path, *, full_rehash_every: int = 100) -> None:
        self.root = root
        self.attestations = Attestations()
        self.layers: dict[str, LayerInfo] = {}
        self.sweeper = Sweeper(
            attestations=self.attestations,
            layers=LayerChecker(full_rehash_every=full_rehash_every),
            upper=UpperChecker(full_rehash_every=full_rehash_every),
        )
        self.ledger = Ledger()
        self.sweeps = 0

    def layer(self, name: str) -> LayerInfo:
        fs = self.root / "snapshots" / name / "fs"
        (fs / "etc").mkdir(parents=True)
        (fs / "etc" / name).write_bytes(name.encode())
        (fs / "bin").mkdir()
        (fs / "bin" / f"{name}-tool").write_bytes(b"#!/bin/sh\n")
        os.chmod(fs / "bin" / f"{name}-tool", 0o755)  # noqa: S103 - an attested executable
        d = digest(name)
        self.attestations.manifests[d] = manifest_from_snapshot(fs)
        info = LayerInfo(len(self.layers), d, "mt", 1, d, d, fs)
        self.layers[name] = info
        return info

    def container(self, cid: str, *layers: str) -> TrackedContainer:
        upper = self.root / "snapshots" / f"rw-{cid}" / "fs"
        upper.mkdir(parents=True)
        chain = tuple(
            LayerInfo(i, x.digest, x.media_type, x.size, x.diff_id, x.chain_id, x.snapshot_dir)
            for i, x in enumerate(self.layers[n] for n in layers)
        )
        return TrackedContainer(
            "ns", cid, "img", digest("image-" + "-".join(layers)), chain, upper, TaskStatus.RUNNING
        )

    def sweep(
        self, containers: list[TrackedContainer], changed: set[Path] | None = None
    ) -> SweepResult:
        self.sweeps += 1
        now = T0 + timedelta(seconds=self.sweeps)
        result = self.sweeper.sweep(containers, now=now, changed=changed)
        for c in result.containers:
            self.ledger.record(c)
        return result

    def open_findings(self, cid: str) -> set[tuple[str | None, str]]:
        entry = self.ledger.get("ns", cid)
        assert entry is not None
        return {(path, kind) for _, path, kind, _ in entry.open_findings}


def checks(result: SweepResult, cid: str) -> list[tuple[str, Digest | None, bool]]:
    (c,) = [c for c in result.containers if c.container.id == cid]
    return [(x.scope, x.layer_digest, x.full_rehash) for x in c.checks]


def test_a_partial_sweep_checks_only_containers_using_a_changed_directory(tmp_path: Path) -> None:
    node = Node(tmp_path)
    la, lb = node.layer("a"), node.layer("b")
    ca, cb = node.container("ca", "a"), node.container("cb", "b")
    first = node.sweep([ca, cb])
    assert not first.partial and first.violations == ()
    assert la.snapshot_dir is not None and lb.snapshot_dir is not None
    (la.snapshot_dir / "etc/a").write_bytes(b"tampered")
    result = node.sweep([ca, cb], changed={la.snapshot_dir})
    assert result.partial
    assert [c.container.id for c in result.containers] == ["ca"]
    assert [(v.container_id, v.path, v.kind) for v in result.violations] == [
        ("ca", "etc/a", "content")
    ]
    # Only the re-scanned layer has a check: the upperdir was not looked at.
    assert checks(result, "ca") == [("layer", la.digest, False)]
    # Another directory's change is left to the sweep that names it.
    assert lb.snapshot_dir is not None
    (lb.snapshot_dir / "etc/b").write_bytes(b"tampered")
    assert node.sweep([ca, cb], changed={la.snapshot_dir}).violations[0].path == "etc/a"
    full = node.sweep([ca, cb])
    assert {(v.container_id, v.path) for v in full.violations} == {
        ("ca", "etc/a"),
        ("cb", "etc/b"),
    }


def test_a_shared_layer_change_reports_every_container_on_it(tmp_path: Path) -> None:
    node = Node(tmp_path)
    base = node.layer("base")
    node.layer("x")
    c1, c2, c3 = (
        node.container("c1", "base"),
        node.container("c2", "base"),
        node.container("c3", "x"),
    )
    node.sweep([c1, c2, c3])
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/base").unlink()
    result = node.sweep([c1, c2, c3], changed={base.snapshot_dir})
    assert sorted((v.container_id, v.path, v.kind) for v in result.violations) == [
        ("c1", "etc/base", "removed"),
        ("c2", "etc/base", "removed"),
    ]


def test_unchanged_layers_findings_stand_and_are_not_resolved(tmp_path: Path) -> None:
    # The ledger replaces a container's open findings with those of its
    # latest result: a partial sweep of its upperdir must still carry the
    # lower layer's finding, or the ledger would think it resolved and
    # report it again (as new) at the next full sweep.
    node = Node(tmp_path)
    low = node.layer("low")
    node.layer("other")
    c, other = node.container("c", "low"), node.container("o", "other")
    assert low.snapshot_dir is not None
    (low.snapshot_dir / "etc/low").write_bytes(b"tampered")
    (other.layers[0].snapshot_dir / "etc/other").write_bytes(b"tampered")  # type: ignore[operator]
    node.sweep([c, other])
    assert node.open_findings("c") == {("etc/low", "content")}
    assert node.open_findings("o") == {("etc/other", "content")}
    assert c.upperdir is not None
    (c.upperdir / "planted").write_bytes(b"#!/bin/sh\n")
    os.chmod(c.upperdir / "planted", 0o755)  # noqa: S103 - the drift under test
    result = node.sweep([c, other], changed={c.upperdir})
    assert [x.container.id for x in result.containers] == ["c"]
    assert {(v.path, v.kind) for v in result.violations} == {
        ("etc/low", "content"),
        ("planted", "drift-new-executable"),
    }
    assert checks(result, "c") == [("upperdir", None, False)]
    assert node.open_findings("c") == {("etc/low", "content"), ("planted", "drift-new-executable")}
    assert node.open_findings("o") == {("etc/other", "content")}  # not looked at, not resolved
    # The next full sweep finds nothing new to report.
    full = node.sweep([c, other])
    assert all(not node.ledger.record(x).new_violations for x in full.containers)


def test_full_rehash_is_counted_per_directory(tmp_path: Path) -> None:
    # Every 3rd check of a directory is a full re-hash, whichever sweep made
    # it: partial sweeps advance only the directories they re-scan.
    node = Node(tmp_path, full_rehash_every=3)
    la = node.layer("a")
    node.layer("b")
    ca, cb = node.container("ca", "a"), node.container("cb", "b")
    assert la.snapshot_dir is not None
    seen_a: list[bool] = []
    seen_b: list[bool] = []
    result = node.sweep([ca, cb])  # check 1 of each: full
    seen_a.append(checks(result, "ca")[0][2])
    seen_b.append(checks(result, "cb")[0][2])
    for _ in range(3):  # checks 2, 3, 4 of a only
        result = node.sweep([ca, cb], changed={la.snapshot_dir})
        seen_a.append(checks(result, "ca")[0][2])
    result = node.sweep([ca, cb])  # check 5 of a, check 2 of b
    seen_a.append(checks(result, "ca")[0][2])
    seen_b.append(checks(result, "cb")[0][2])
    assert seen_a == [True, False, False, True, False]
    assert seen_b == [True, False]


def test_a_partial_sweep_forgets_no_state(tmp_path: Path) -> None:
    # A container left out of a partial sweep's list keeps its state: only a
    # full sweep prunes what is no longer running.
    node = Node(tmp_path)
    la, lb = node.layer("a"), node.layer("b")
    ca, cb = node.container("ca", "a"), node.container("cb", "b")
    node.sweep([ca, cb])
    assert la.snapshot_dir is not None and lb.snapshot_dir is not None
    node.sweep([ca], changed={la.snapshot_dir})
    result = node.sweep([ca, cb])
    # b's second check reused its state (incremental), so it was not forgotten.
    assert checks(result, "cb") == [("layer", lb.digest, False), ("upperdir", None, False)]
    node.sweep([ca])
    result = node.sweep([ca, cb])
    assert checks(result, "cb")[0] == ("layer", lb.digest, True)  # pruned by the full sweep
