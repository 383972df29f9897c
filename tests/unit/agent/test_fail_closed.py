# SPDX-License-Identifier: Apache-2.0
"""What the agent cannot check is a violation, and the rest is still checked.

Real directories and the real checkers; only the attestation source of the
pending-grace tests is a table (a server that cannot answer is what they model).
"""

from __future__ import annotations

import errno
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import AgentConfig
from agent.containerd import LayerInfo
from agent.containerd.types import TaskStatus
from agent.integrity.attestation import LayerAttestation
from agent.integrity.drift import UpperChecker, merged_view
from agent.integrity.inventory import TrackedContainer
from agent.integrity.layers import LayerChecker
from agent.integrity.sweep import Sweeper
from agent.report import Violation
from attestor.digests import Digest
from attestor.errors import ConfigError, InvalidInput
from attestor.manifest import FileManifest, ManifestLimits, SnapshotWalk, manifest_from_snapshot

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
BAD = b"bad\xff"


def _digest(name: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_bytes(b"root:x:0:0\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "bin/tool", 0o755)  # noqa: S103 - an attested executable
    return root


def _bad_name(directory: Path) -> None:
    with open(os.path.join(os.fsencode(directory), BAD), "wb") as f:
        f.write(b"x")


def test_a_non_utf8_name_does_not_hide_a_tampered_file_beside_it(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    _bad_name(root / "etc")
    (root / "etc/passwd").write_bytes(b"evil::0:0\n")
    result = LayerChecker().check(root, attested)
    assert [(c.path, c.kind) for c in result.changes] == [("etc/passwd", "content")]
    assert [(u.path, u.reason) for u in result.unscannable] == [
        ("etc/bad\\xff", "name is not valid UTF-8")
    ]


def test_a_path_over_the_limit_is_unscannable_and_the_rest_is_compared(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    (root / "etc" / ("x" * 40)).write_bytes(b"long")
    (root / "bin/tool").write_bytes(b"#!/bin/sh\nevil\n")
    result = LayerChecker(limits=ManifestLimits(max_path_bytes=30)).check(root, attested)
    assert [(c.path, c.kind) for c in result.changes] == [("bin/tool", "content")]
    ((long,),) = [[u for u in result.unscannable]]
    assert long.path == "etc/" + "x" * 40 and long.too_large
    assert long.reason == "path is 44 bytes, limit 30"


def test_the_entry_cap_is_a_finding_for_the_whole_layer_not_a_flood_of_removed(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    for i in range(10):
        (root / f"f{i}").write_bytes(b"")
    result = LayerChecker(limits=ManifestLimits(max_entries=6)).check(root, attested)
    assert [(u.path, u.too_large) for u in result.unscannable] == [(None, True)]
    assert result.unscannable[0].reason == (
        "snapshot has more than 6 entries; the rest of the snapshot was not checked"
    )
    assert all(c.kind != "removed" for c in result.changes)


def test_a_symlink_in_place_of_an_attested_directory_is_a_type_change_not_followed(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path / "fs")
    attested = manifest_from_snapshot(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0\n")  # the same bytes, elsewhere
    (root / "etc").rename(tmp_path / "moved")
    (root / "etc").symlink_to(outside)
    result = LayerChecker().check(root, attested)
    assert {(c.path, c.kind) for c in result.changes} == {
        ("etc", "type"),
        ("etc/passwd", "removed"),
    }
    assert result.unscannable == ()


def test_drift_check_reports_an_unscannable_name_and_still_finds_drift(tmp_path: Path) -> None:
    lower = manifest_from_snapshot(_tree(tmp_path / "lower"))
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_bytes(b"evil::0:0\n")
    _bad_name(upper / "etc")
    (upper / "evil.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(upper / "evil.sh", 0o755)  # noqa: S103 - drift under test
    scan = UpperChecker().check(upper, merged_view([lower]))
    assert {(f.path, f.kind) for f in scan.findings} == {
        ("etc/passwd", "drift-modified"),
        ("evil.sh", "drift-new-executable"),
    }
    assert [u.path for u in scan.unscannable] == ["etc/bad\\xff"]


def test_both_checkers_carry_a_failed_walk_as_unscannable_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One convention for both checkers: a walk that fails as a whole (here an
    # I/O error, which a real directory does not produce on demand) is one
    # unscannable record without a path, and no state is kept.
    lower_root = _tree(tmp_path / "lower")
    lower = manifest_from_snapshot(lower_root)

    def io_error(self: SnapshotWalk) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(SnapshotWalk, "emit_linked", io_error)
    failed = f"cannot read snapshot {str(lower_root)!r}: [Errno 5] Input/output error"
    upper = UpperChecker()
    scan = upper.check(lower_root, merged_view([lower]))
    assert (scan.findings, scan.files, scan.hashed, scan.full) == ((), 0, 0, False)
    assert [(u.path, u.reason) for u in scan.unscannable] == [(None, failed)]
    assert upper.tracked() == frozenset()
    layers = LayerChecker()
    check = layers.check(lower_root, lower)
    assert (check.changes, check.files_checked, check.full_rehash) == ((), 0, False)
    assert [(u.path, u.reason) for u in check.unscannable] == [(None, failed)]
    assert layers.tracked() == frozenset()


def test_drift_check_does_not_count_bytes_it_never_reads(tmp_path: Path) -> None:
    lower = manifest_from_snapshot(_tree(tmp_path / "lower"))
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "big.log").write_bytes(b"l" * 4096)  # new, not executable: never hashed
    scan = UpperChecker(limits=ManifestLimits(max_total_size=100)).check(
        upper, merged_view([lower])
    )
    assert scan.findings == () and scan.unscannable == ()


# -- the sweep: unscannable and pending layers become violations -------------


class _Table:
    """The ``AttestationSource`` protocol over a table; None: pending."""

    def __init__(self) -> None:
        self.manifests: dict[Digest, FileManifest | None] = {}

    def resolve(
        self, layer: LayerInfo, *, image_name: str, image_digest: Digest
    ) -> LayerAttestation:
        manifest = self.manifests[layer.digest]
        if manifest is None:
            return LayerAttestation(layer.digest, "pending", reason="server unavailable")
        return LayerAttestation(layer.digest, "valid", manifest=manifest)


def _container(tmp_path: Path, table: _Table) -> tuple[TrackedContainer, Path, Path]:
    fs = _tree(tmp_path / "snapshots/1/fs")
    d = _digest("layer")
    table.manifests[d] = manifest_from_snapshot(fs)
    upper = tmp_path / "snapshots/2/fs"
    upper.mkdir(parents=True)
    layer = LayerInfo(0, d, "mt", 1, d, d, fs)
    container = TrackedContainer(
        "ns", "c1", "img", _digest("image"), (layer,), upper, TaskStatus.RUNNING
    )
    return container, fs, upper


def _found(violations: tuple[Violation, ...]) -> set[tuple[str | None, str]]:
    return {(v.path, v.kind) for v in violations}


def test_sweep_turns_unscannable_entries_into_violations_beside_the_others(
    tmp_path: Path,
) -> None:
    table = _Table()
    container, fs, upper = _container(tmp_path, table)
    _bad_name(fs / "etc")
    (fs / "etc/passwd").write_bytes(b"evil::0:0\n")
    _bad_name(upper)
    sweeper = Sweeper(attestations=table, layers=LayerChecker(), upper=UpperChecker())
    result = sweeper.sweep([container], now=T0)
    assert _found(result.violations) == {
        ("etc/passwd", "content"),
        ("etc/bad\\xff", "unscannable"),
        ("bad\\xff", "unscannable"),
    }
    by_scope = {v.detail["scope"]: v for v in result.violations if v.kind == "unscannable"}
    assert by_scope["layer"].layer_digest == container.layers[0].digest
    assert by_scope["upperdir"].layer_digest is None
    assert by_scope["layer"].detail["reason"] == "name is not valid UTF-8"
    for v in result.violations:
        assert Violation.from_dict(v.to_dict()) == v  # the schema takes the new kind
    (check,) = [c for c in result.containers[0].checks if c.scope == "layer"]
    assert check.result == "violations" and check.violations == 2


def test_a_whole_snapshot_that_cannot_be_read_is_a_pathless_violation(tmp_path: Path) -> None:
    table = _Table()
    container, fs, _ = _container(tmp_path, table)
    fs.rename(tmp_path / "gone")
    result = Sweeper(attestations=table, layers=LayerChecker(), upper=UpperChecker()).sweep(
        [container], now=T0
    )
    ((v),) = result.violations
    assert (v.path, v.kind, v.layer_digest) == (None, "unscannable", container.layers[0].digest)
    assert v.detail["reason"].startswith("snapshot root cannot be opened")


def test_a_layer_pending_past_the_grace_period_is_unverified(tmp_path: Path) -> None:
    table = _Table()
    container, _, _ = _container(tmp_path, table)
    digest = container.layers[0].digest
    table.manifests[digest] = None
    sweeper = Sweeper(
        attestations=table, layers=LayerChecker(), upper=UpperChecker(), pending_grace=300
    )
    assert sweeper.sweep([container], now=T0).violations == ()
    assert sweeper.sweep([container], now=T0 + timedelta(seconds=299)).violations == ()
    late = sweeper.sweep([container], now=T0 + timedelta(seconds=300)).violations
    assert [(v.layer_digest, v.path, v.kind) for v in late] == [(digest, None, "unverified")]
    assert late[0].detail["reason"] == "no verified attestation for 300 s: server unavailable"
    # Resolved: the clock restarts for the next outage.
    table.manifests[digest] = manifest_from_snapshot(container.layers[0].snapshot_dir)  # type: ignore[arg-type]
    assert sweeper.sweep([container], now=T0 + timedelta(seconds=301)).violations == ()
    table.manifests[digest] = None
    assert sweeper.sweep([container], now=T0 + timedelta(seconds=302)).violations == ()


def test_pending_grace_is_configured_and_checked(tmp_path: Path) -> None:
    base = {"containerd_address": "/run/c.sock", "namespaces": ("k8s.io",), "state_dir": tmp_path}
    assert AgentConfig(**base).pending_grace == 300.0  # type: ignore[arg-type]
    assert AgentConfig(**base, pending_grace=0).pending_grace == 0  # type: ignore[arg-type]
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError):
            AgentConfig(**base, pending_grace=bad)  # type: ignore[arg-type]


def test_scan_snapshot_still_refuses_what_it_cannot_represent(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs")
    _bad_name(root)
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        manifest_from_snapshot(root)


def test_pending_grace_is_a_flag_and_an_env_var_of_both_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for command in ("run", "check"):
        cmd = main.commands[command]
        assert cmd.make_context(command, ["--pending-grace", "42"]).params["pending_grace"] == 42
        assert cmd.make_context(command, []).params["pending_grace"] == 300
        monkeypatch.setenv("ATTESTOR_AGENT_PENDING_GRACE", "7")
        assert cmd.make_context(command, []).params["pending_grace"] == 7
        monkeypatch.delenv("ATTESTOR_AGENT_PENDING_GRACE")
    assert CliRunner().invoke(main, ["run", "--pending-grace", "-1"]).exit_code == 2
