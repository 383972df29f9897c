# SPDX-License-Identifier: Apache-2.0
"""`attestor policy apply|list|diff|rollback` on the server's database (SQLite and PostgreSQL)."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from attestor.services import policies
from attestor.store import audit as audit_store
from attestor.store.db import make_session_factory
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def _cli(engine: Engine, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTESTOR_", "DATABASE_URL"))}
    env["ATTESTOR_DATA_DIR"] = str(tmp_path / "var")
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "attestor", "policy", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_apply_list_diff_rollback(db_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a.yaml").write_bytes(policy_doc("a"))
    (folder / "b.yml").write_bytes(policy_doc("b"))
    done = _cli(db_engine, tmp_path, "apply", str(folder))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"a: created, version 1 ({folder / 'a.yaml'})",
        f"b: created, version 1 ({folder / 'b.yml'})",
    ]
    assert "unchanged, version 1" in _cli(db_engine, tmp_path, "apply", str(folder)).stdout
    (folder / "a.yaml").write_bytes(policy_doc("a", label="2", host="q.example"))
    done = _cli(db_engine, tmp_path, "apply", str(folder / "a.yaml"))
    assert done.stdout.strip() == f"a: updated, version 2 ({folder / 'a.yaml'})"

    listed = [json.loads(line) for line in _cli(db_engine, tmp_path, "list").stdout.splitlines()]
    assert [(p["id"], p["version"], p["label"]) for p in listed] == [("a", 2, "2"), ("b", 1, "1")]
    assert all("document" not in p for p in listed)

    diff = _cli(db_engine, tmp_path, "diff", "a").stdout
    assert diff.startswith("--- a@1\n+++ a@2\n")
    assert '-  - host: "r.example"\n+  - host: "q.example"\n' in diff
    assert _cli(db_engine, tmp_path, "diff", "a", "--from", "2", "--to", "2").stdout == ""

    done = _cli(db_engine, tmp_path, "rollback", "a", "--to", "1")
    assert done.stdout.strip() == "a: rolled-back, version 3 has the content of version 1"
    with make_session_factory(db_engine)() as s:
        assert policies.get(s, "a").document == policy_doc("a").decode()
        actors = {e.actor for e in audit_store.iter_entries(s)}
    assert actors == {f"cli:{getpass.getuser()}"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rollback", "a", "--to", "7"), "NotFound: policy 'a' has no version 7"),
        (("rollback", "nope", "--to", "1"), "NotFound: no policy with id 'nope'"),
        (("diff", "a", "--from", "5"), "NotFound: policy 'a' has no version 5"),
    ],
)
def test_bad_requests_are_one_line_and_exit_1(
    db_engine: Engine, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "a.yaml").write_bytes(policy_doc("a"))
    assert _cli(db_engine, tmp_path, "apply", str(tmp_path / "a.yaml")).returncode == 0
    done = _cli(db_engine, tmp_path, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [f"attestor: {message}"]


def test_one_invalid_file_stores_nothing(db_engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(policy_doc("a"))
    (tmp_path / "z.yaml").write_bytes(policy_doc("z").replace(b"registries", b"registriez"))
    done = _cli(db_engine, tmp_path, "apply", str(tmp_path))
    assert (done.returncode, done.stdout) == (1, "")
    [line] = done.stderr.splitlines()
    assert line.startswith("attestor: InvalidInput: ") and "z.yaml" in line
    with make_session_factory(db_engine)() as s:
        assert policies.list_policies(s, include_deleted=True) == []
        assert audit_store.head(s)[0] == 0
