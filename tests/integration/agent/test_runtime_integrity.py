# SPDX-License-Identifier: Apache-2.0
"""The integrity engine on real containerd: tamper on the host, drift inside.

No server here: the attested manifests are computed from the image's own
layer blobs (``manifest_from_layer_blob`` with ``lower=``), which is what the
server signs. Each test imports the sample image into a namespace of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.check import run_check
from agent.containerd import LayerInfo
from agent.integrity.attestation import LayerAttestation
from agent.integrity.layers import LayerChecker
from agent.report import Violation
from attestor.digests import Digest
from attestor.manifest import FileManifest
from tests.integration.agent._integrity_node import (
    NOW,
    Node,
    StaticAttestations,
    node,
    sample_tar,
)

__all__ = ["node", "sample_tar"]  # fixtures used here


def _found(violations: list[Violation]) -> set[tuple[str | None, str | None, str]]:
    return {(v.layer_digest, v.path, v.kind) for v in violations}


def test_clean_image_has_no_violation(node: Node) -> None:
    cid = node.run()
    report = run_check([node.client], node.attested, now=NOW)
    assert report.errors == ()
    assert report.sweep.violations == ()
    assert report.exit_code == 0
    (container,) = report.sweep.containers
    assert container.container.id == cid
    assert [r.attestation.status for r in container.layers] == ["valid"] * 4
    assert all(r.check is not None and r.check.changes == () for r in container.layers)
    assert container.upper.upperdir is not None and container.upper.findings == ()
    doc = report.to_json()
    assert doc["result"] == "clean" and doc["containers"][0]["layers"][1]["status"] == "valid"


def test_host_tampering_of_lower_layers_is_detected(node: Node) -> None:
    cid = node.run()
    base, files = node.layers()[0], node.layers()[1]
    assert base.snapshot_dir is not None and files.snapshot_dir is not None
    b, f = base.snapshot_dir, files.snapshot_dir
    st = os.lstat(b / "etc/hostname")
    (b / "etc/hostname").write_bytes(b"evil\n")
    os.chown(b / "etc/hostname", st.st_uid, st.st_gid)
    os.chmod(f / "usr/local/bin/tool", 0o4755)  # noqa: S103 - the tampering under test
    (f / "srv/data/extra.txt").write_bytes(b"planted\n")
    os.unlink(f / "srv/a/b/c/deep.txt")
    os.unlink(f / "etc/app.link")
    os.symlink("/etc/shadow", f / "etc/app.link")

    violations = node.check()
    assert _found(violations) == {
        (base.digest, "etc/hostname", "content"),
        (files.digest, "usr/local/bin/tool", "mode"),
        (files.digest, "srv/data/extra.txt", "added"),
        (files.digest, "srv/a/b/c/deep.txt", "removed"),
        (files.digest, "etc/app.link", "link"),
    }
    assert {v.container_id for v in violations} == {cid}
    by_path = {v.path: v for v in violations}
    assert by_path["usr/local/bin/tool"].detail["expected"] == "0755"
    assert by_path["usr/local/bin/tool"].detail["actual"] == "4755"
    assert by_path["etc/app.link"].detail["actual"] == "/etc/shadow"


def test_shared_layer_is_scanned_once_and_reported_per_container(node: Node) -> None:
    first, second = node.run(), node.run()
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    (base.snapshot_dir / "etc/planted").write_bytes(b"x")
    report = run_check([node.client], node.attested, now=NOW)
    assert {(v.container_id, v.path, v.kind) for v in report.sweep.violations} == {
        (first, "etc/planted", "added"),
        (second, "etc/planted", "added"),
    }
    checks = [r.check for c in report.sweep.containers for r in c.layers]
    assert checks[0] is checks[4]  # the same LayerCheck object: one scan


def test_drift_in_the_upperdir_is_reported_separately(node: Node) -> None:
    cid = node.run()
    node.exec(cid, "echo tampered >> /etc/app.conf")
    node.exec(cid, "/bin/busybox rm /srv/new.txt")
    node.exec(
        cid,
        "/bin/busybox rm /srv/data/secret.key && /bin/busybox ln -s /bin/sh /srv/data/secret.key",
    )
    node.exec(cid, "echo '#!/bin/sh' > /srv/evil.sh && /bin/busybox chmod 755 /srv/evil.sh")
    node.exec(cid, "echo log > /srv/plain.log")  # new non-executable file: not drift
    layers = node.layers()
    violations = node.check()
    assert _found(violations) == {
        (layers[2].digest, "etc/app.conf", "drift-modified"),
        (layers[2].digest, "srv/new.txt", "drift-deleted"),
        (layers[1].digest, "srv/data/secret.key", "drift-shadowed"),
        (None, "srv/evil.sh", "drift-new-executable"),
    }
    modified = next(v for v in violations if v.kind == "drift-modified")
    assert modified.detail["scope"] == "upperdir" and modified.detail["aspects"] == ["content"]


def test_unattested_layer_is_a_violation(node: Node) -> None:
    node.run()
    top = node.layers()[3]
    del node.attested.manifests[top.digest]
    report = run_check([node.client], node.attested, now=NOW)
    kinds = {(v.layer_digest, v.path, v.kind) for v in report.sweep.violations}
    assert kinds == {(top.digest, None, "unattested")}
    assert report.exit_code == 1
    assert report.to_json()["containers"][0]["layers"][3]["status"] == "unattested"


def test_incremental_sweep_sees_a_change_and_a_full_rehash_sees_a_hidden_one(
    node: Node, tmp_path: Path
) -> None:
    node.run()
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    checker = LayerChecker(full_rehash_every=3)
    manifest = node.attested.manifests[base.digest]
    first = checker.check(base.snapshot_dir, manifest)
    assert first.full_rehash and first.changes == ()
    target = base.snapshot_dir / "etc/hostname"
    second = checker.check(base.snapshot_dir, manifest)
    assert not second.full_rehash and second.bytes_hashed == 0
    target.write_bytes(b"changed\n")
    third = checker.check(base.snapshot_dir, manifest)
    assert [(c.path, c.kind) for c in third.changes] == [("etc/hostname", "content")]
    assert third.bytes_hashed == len(b"changed\n")


def _bad_name(directory: Path) -> None:
    # A name that is not UTF-8: the manifest cannot carry it, so the agent
    # cannot check it; before, this one file turned the whole check off.
    with open(os.path.join(os.fsencode(directory), b"bad\xff"), "wb") as f:
        f.write(b"x")


def test_non_utf8_name_beside_a_tampered_lower_file_reports_both(node: Node) -> None:
    cid = node.run()
    base = node.layers()[0]
    assert base.snapshot_dir is not None
    _bad_name(base.snapshot_dir / "etc")
    (base.snapshot_dir / "etc/hostname").write_bytes(b"evil\n")
    report = run_check([node.client], node.attested, now=NOW)
    assert _found(list(report.sweep.violations)) == {
        (base.digest, "etc/hostname", "content"),
        (base.digest, "etc/bad\\xff", "unscannable"),
    }
    assert {v.container_id for v in report.sweep.violations} == {cid}
    # check --once: exit 1, and the JSON says which layer was not fully checked.
    assert report.exit_code == 1
    doc = report.to_json()
    assert doc["result"] == "violations"
    assert doc["containers"][0]["layers"][0]["unscannable"] == 1
    unscannable = next(v for v in doc["violations"] if v["kind"] == "unscannable")
    assert unscannable["detail"]["reason"] == "name is not valid UTF-8"
    assert unscannable["detail"]["scope"] == "layer"


def test_check_once_exits_1_on_an_unscannable_entry_alone(node: Node) -> None:
    node.run()
    files = node.layers()[1]
    assert files.snapshot_dir is not None
    _bad_name(files.snapshot_dir / "srv")
    report = run_check([node.client], node.attested, now=NOW)
    assert _found(list(report.sweep.violations)) == {(files.digest, "srv/bad\\xff", "unscannable")}
    assert report.errors == () and report.exit_code == 1


def test_non_utf8_name_in_the_upperdir_beside_drift_reports_both(node: Node) -> None:
    cid = node.run()
    node.exec(cid, "echo tampered >> /etc/app.conf")
    node.exec(cid, "/bin/busybox touch \"/srv/$(/bin/busybox printf 'bad\\377')\"")
    layers = node.layers()
    report = run_check([node.client], node.attested, now=NOW)
    assert _found(list(report.sweep.violations)) == {
        (layers[2].digest, "etc/app.conf", "drift-modified"),
        (None, "srv/bad\\xff", "unscannable"),
    }
    assert report.exit_code == 1
    (container,) = report.sweep.containers
    (item,) = container.upper.unscannable
    assert item.reason == "name is not valid UTF-8"
    assert report.to_json()["containers"][0]["upperdir"]["unscannable"] == 1


class _TopPending(StaticAttestations):
    """The top layer's attestation cannot be looked up (the server is down)."""

    def __init__(self, manifests: dict[str, FileManifest], pending: str) -> None:
        super().__init__(manifests)
        self.pending = pending

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation:
        if layer.digest == self.pending:
            return LayerAttestation(layer.digest, "pending", reason="server unavailable")
        return super().resolve(layer, image_name=image_name, image_digest=image_digest)


def test_check_once_with_no_grace_makes_a_pending_layer_a_violation(node: Node) -> None:
    node.run()
    top = node.layers()[3]
    source = _TopPending(node.attested.manifests, top.digest)
    # Without a grace period of 0, pending is an error: never a clean exit.
    default = run_check([node.client], source, now=NOW)
    assert default.sweep.violations == () and default.exit_code == 2
    strict = run_check([node.client], source, now=NOW, pending_grace=0)
    assert _found(list(strict.sweep.violations)) == {(top.digest, None, "unverified")}
    assert strict.exit_code == 1
