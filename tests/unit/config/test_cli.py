# SPDX-License-Identifier: Apache-2.0
"""The CLI uses the server's configuration and fails cleanly on bad configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from attestor.cli.main import cli
from attestor.config import load_settings
from attestor.store import revocations, tokens
from attestor.store.db import make_engine, make_session_factory


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, args, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("DATABASE_URL", "REDIS_URL", "ATTESTOR_CONFIG", "ATTESTOR_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return {"ATTESTOR_DATA_DIR": str(tmp_path / "var")}


def test_token_create_prints_token_last(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, out, _ = _run(["token", "create", "--role", "agent", "--agent-id", "node-1"], env)
    assert code == 0
    secret = out.strip().splitlines()[-1]
    engine = make_engine(load_settings(env).database_url)
    with make_session_factory(engine).begin() as s:
        row = tokens.authenticate(s, secret, now=datetime.now(UTC))
    engine.dispose()
    assert row is not None
    assert row.role == "agent"
    assert row.agent_id == "node-1"
    code, out, _ = _run(["token", "list"], env)
    assert code == 0
    assert secret not in out
    assert '"agent_id": "node-1"' in out


def test_agent_token_needs_agent_id(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = _run(["token", "create", "--role", "agent"], env)
    assert code == 1
    assert "agent_id" in err


def test_bad_config_is_one_line_exit_2(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    code, _, err = _run(["admin", "migrate"], env)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "DATABASE_URL" in err


def test_worker_without_redis_exits_2(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = _run(["worker"], env)
    assert code == 2
    assert "REDIS_URL" in err


def test_admin_migrate(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, out, _ = _run(["admin", "migrate"], env)
    assert code == 0
    from tests.alembic_head import head_revision

    assert f"database at revision {head_revision()}" in out


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--bogus"],
        ["bogus"],
        ["token", "create", "--role", "nope"],
        ["serve", "--port", "not-a-number"],
        ["verify-bundle", "--bogus"],
    ],
    ids=["unknown-option", "unknown-command", "bad-choice", "bad-value", "subcommand-option"],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], env: dict[str, str]) -> None:
    code, out, err = _run(args, env)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("attestor: usage: ")


def test_admin_new_feed_id_gives_the_feed_a_new_id(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a database restore the feed must get a new id, so that agents read it
    # again from the start instead of skipping sequences numbered a second time.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _run(["admin", "migrate"], env)[0] == 0
    engine = make_engine(load_settings(env).database_url)
    factory = make_session_factory(engine)
    with factory() as s:
        before = revocations.feed_state(s).feed_id
    code, out, err = _run(["admin", "new-feed-id"], env)
    with factory() as s:
        after = revocations.feed_state(s).feed_id
    engine.dispose()
    assert (code, err) == (0, "")
    assert after != before
    assert after.startswith("feed-")
    assert out.strip() == f"revocation feed id is now {after}"
