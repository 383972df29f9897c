# SPDX-License-Identifier: Apache-2.0
"""Agent configuration, the CLI's flags and exit codes, JSON logs, the ledger."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import JsonFormatter, main
from agent.config import AgentConfig, parse_label_selector, read_token
from agent.containerd import LayerInfo
from agent.integrity.attestation import LayerAttestation
from agent.integrity.inventory import POD_UID_LABEL, ContainerFilter, TrackedContainer
from agent.integrity.ledger import Ledger
from agent.integrity.sweep import ContainerResult, LayerResult, UpperCheck
from agent.report import Violation
from attestor.digests import Digest
from attestor.errors import ConfigError

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
D = Digest("sha256:" + "d" * 64)


def config(**kw: object) -> AgentConfig:
    return AgentConfig(containerd_address="/x.sock", namespaces=("k8s.io",),
                       state_dir=Path("/tmp/s"), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_config_checks_modes_and_keeps_the_token_out_of_repr() -> None:
    c = config(token="s3cret")
    assert "s3cret" not in repr(c)
    with pytest.raises(ConfigError):
        config(mode="sidecar")
    with pytest.raises(ConfigError):
        config(pod_uid="u")  # node mode
    with pytest.raises(ConfigError):
        AgentConfig(containerd_address="/x", namespaces=(), state_dir=Path("/s"))
    with pytest.raises(ConfigError, match="token"):
        config(server="http://127.0.0.1:1").require_server()
    sidecar = config(mode="sidecar", labels={"app": "web"})
    assert sidecar.selector.labels == {"app": "web"}


def test_label_selector_and_token_file(tmp_path: Path) -> None:
    assert parse_label_selector("a=1, b=2") == {"a": "1", "b": "2"}
    with pytest.raises(ConfigError):
        parse_label_selector("novalue")
    token = tmp_path / "token"
    token.write_text("abc\n")
    assert read_token(token) == "abc"
    token.write_text("\n")
    with pytest.raises(ConfigError):
        read_token(token)
    with pytest.raises(ConfigError):
        read_token(tmp_path / "missing")


def test_container_filter() -> None:
    pod = ContainerFilter(pod_uid="p1")

    def c(labels: dict[str, str]) -> object:
        from agent.containerd.types import Container

        return Container("id", "img", "overlayfs", "id", "io.containerd.runc.v2", labels)

    assert pod.matches(c({POD_UID_LABEL: "p1"}))  # type: ignore[arg-type]
    assert not pod.matches(c({POD_UID_LABEL: "p2"}))  # type: ignore[arg-type]
    assert ContainerFilter(labels={"a": "1"}).matches(c({"a": "1", "b": "2"}))  # type: ignore[arg-type]
    assert ContainerFilter().matches(c({}))  # type: ignore[arg-type]


def test_cli_help_and_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "run" in result.output and "check" in result.output
    result = runner.invoke(main, ["check", "--once", "--namespace", "n"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "--server" in result.stderr
    result = runner.invoke(main, ["check", "--server", "http://127.0.0.1:1", "--token", "t"])
    assert result.exit_code == 2 and "--once" in result.stderr
    result = runner.invoke(main, ["run", "--mode", "sidecar", "--server", "http://127.0.0.1:1",
                                  "--token", "t", "--state-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "sidecar" in result.stderr
    result = runner.invoke(main, ["check", "--once", "--token-file", str(tmp_path / "none"),
                                  "--server", "http://127.0.0.1:1"])  # fmt: skip
    assert result.exit_code == 2 and "token file" in result.stderr
    assert runner.invoke(main, ["check", "--bogus"]).exit_code == 2


def test_cli_check_with_an_unreachable_server_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["check", "--once", "--server", "http://127.0.0.1:9", "--token", "t",
         "--containerd-address", str(tmp_path / "none.sock"), "--server-timeout", "1"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unreachable" in result.stderr or "Unavailable" in result.stderr


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "attestor.agent", "levelname": "WARNING", "msg": "violation",
         "kind": "content", "path": "etc/x", "created": T0.timestamp()}
    )  # fmt: skip
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "violation" and doc["kind"] == "content" and doc["path"] == "etc/x"
    assert doc["level"] == "warning" and doc["time"].startswith("2026-11-27T05:00:00")


def _result(violations: list[Violation], status: str = "valid") -> ContainerResult:
    container = TrackedContainer("ns", "c1", "img:1", D, (), None, None)
    layer = LayerInfo(0, D, "mt", 1, D, D, None)
    att = LayerAttestation(D, status)  # type: ignore[arg-type]
    return ContainerResult(
        container, (LayerResult(layer, att, None),), UpperCheck(None, (), 0, False),
        tuple(violations), (),
    )  # fmt: skip


def _violation(path: str, actual: str, when: datetime = T0) -> Violation:
    return Violation.create(
        container_id="c1", image_digest=D, layer_digest=D, path=path, kind="content",
        detected_at=when, detail={"actual": actual},
    )  # fmt: skip


def test_ledger_reports_a_finding_once_until_it_goes_away() -> None:
    ledger = Ledger()
    first = ledger.record(_result([_violation("a", "x")]))
    assert len(first.new_violations) == 1 and first.report_changed
    again = ledger.record(_result([_violation("a", "x", T0 + timedelta(seconds=30))]))
    assert again.new_violations == () and not again.report_changed
    changed = ledger.record(_result([_violation("a", "y")]))
    assert len(changed.new_violations) == 1
    ledger.record(_result([]))
    back = ledger.record(_result([_violation("a", "y")]))
    assert len(back.new_violations) == 1
    status = ledger.record(_result([_violation("a", "y")], status="revoked"))
    assert status.report_changed and status.new_violations == ()
    report = ledger.report("ns", "c1", now=T0, finalized=True)
    assert report is not None and report.finalized and len(report.anomalies) == 3
    report.to_dict()  # schema-valid


def test_ledger_on_disk_survives_a_restart_and_forgets_finalized(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    first = Ledger.open(path)
    assert len(first.record(_result([_violation("a", "x")])).new_violations) == 1
    restarted = Ledger.open(path)
    again = restarted.record(_result([_violation("a", "x", T0 + timedelta(hours=1))]))
    assert again.new_violations == ()  # already reported before the restart
    assert len(restarted.record(_result([_violation("b", "y")])).new_violations) == 1
    restarted.drop("ns", "c1")
    assert len(Ledger.open(path).record(_result([_violation("b", "y")])).new_violations) == 1


def test_ledger_forgets_restored_findings_of_vanished_containers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    Ledger.open(path).record(_result([_violation("a", "x")]))
    restarted = Ledger.open(path)
    restarted.forget_absent([("ns", "other")])
    assert len(Ledger.open(path).record(_result([_violation("a", "x")])).new_violations) == 1


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"version": 2, "containers": []}', b'{"version": 1, "containers": [{"id": 1}]}',
     b'{"version":1,"version":1,"containers":[]}'],
)  # fmt: skip
def test_a_damaged_ledger_is_discarded_not_fatal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(content)
    ledger = Ledger.open(path)
    assert len(ledger.record(_result([_violation("a", "x")])).new_violations) == 1
    assert json.loads(path.read_bytes())["version"] == 1  # rewritten whole


def test_note_error_goes_into_every_history() -> None:
    ledger = Ledger()
    ledger.record(_result([]))
    assert ledger.note_error("revocation feed: stale " + "x" * 2000, now=T0) == [("ns", "c1")]
    report = ledger.report("ns", "c1", now=T0)
    assert report is not None
    assert report.history[-1].result == "error" and len(report.history[-1].error or "") == 1000
    report.to_dict()  # schema-valid


def test_revocation_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        config(revocation_poll_interval=0)
    with pytest.raises(ConfigError):
        config(revocation_fail_mode="explode")
    assert config().revocation_dir == Path("/tmp/s/revocation")


def test_ca_bundle_flag_and_env_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    run = main.commands["run"]
    ctx = run.make_context("run", ["--server", "https://s:8443", "--ca-bundle", "/etc/ca.pem"])
    assert ctx.params["ca_bundle"] == Path("/etc/ca.pem")
    monkeypatch.setenv("ATTESTOR_AGENT_CA_BUNDLE", "/env/ca.pem")
    assert run.make_context("run", []).params["ca_bundle"] == Path("/env/ca.pem")


def test_unreadable_ca_bundle_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("agent-token-0123456789\n")
    missing = tmp_path / "ca.crt"
    result = CliRunner().invoke(
        main,
        ["check", "--once", "--server", "https://s:8443", "--token-file", str(tmp_path / "token")]
        + ["--ca-bundle", str(missing), "--containerd-address", str(tmp_path / "c.sock")],
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"attestor-agent: ConfigError: cannot read CA bundle {missing}: No such file or directory"
    )
