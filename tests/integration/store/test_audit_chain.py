# SPDX-License-Identifier: Apache-2.0
"""The audit chain: concurrent appenders do not fork it, and `attestor audit verify`
detects an edited, a removed and a reordered row, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from attestor.services import audit, policies
from attestor.store import audit as audit_store
from attestor.store.db import make_session_factory
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _fill(engine: Engine, rows: int) -> None:
    factory = make_session_factory(engine)
    for i in range(rows):
        with factory.begin() as s:
            audit.record(
                s,
                actor=f"token:t{i}",
                action="token.create",
                target=f"token:id-{i}",
                change={"role": "pipeline", "n": i, "name": "ünïcode"},
                now=NOW + timedelta(microseconds=i),
            )


def _cli_verify(engine: Engine, tmp_path: Path, *anchors: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTESTOR_", "DATABASE_URL"))}
    env["ATTESTOR_DATA_DIR"] = str(tmp_path / "var")
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    args = [a for anchor in anchors for a in ("--anchor", anchor)]
    return subprocess.run(
        [sys.executable, "-m", "attestor", "audit", "verify", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_verify_passes_on_an_intact_chain_and_prints_its_head(
    db_engine: Engine, tmp_path: Path
) -> None:
    _fill(db_engine, 4)
    done = _cli_verify(db_engine, tmp_path)
    assert done.returncode == 0, done.stderr
    with make_session_factory(db_engine)() as s:
        seq, digest = audit_store.head(s)
    assert done.stdout.strip() == f"audit log intact: 4 rows, head 4:{digest}"
    assert seq == 4
    assert _cli_verify(db_engine, tmp_path, f"2:{'0' * 64}").returncode == 1


@pytest.mark.parametrize(
    ("tamper", "broken_row", "why"),
    [
        ("UPDATE audit_log SET actor = 'token:someone-else' WHERE seq = 3", 3, "row edited"),
        ("UPDATE audit_log SET change = '[99]' WHERE seq = 2", 2, "row edited"),
        ("DELETE FROM audit_log WHERE seq = 2", 2, "row 2 is missing"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "rows removed"),
        (
            # Rows 2 and 3 swap places, each keeping its own hashes.
            "UPDATE audit_log SET seq = -2 WHERE seq = 2;"
            "UPDATE audit_log SET seq = 2 WHERE seq = 3;"
            "UPDATE audit_log SET seq = 3 WHERE seq = -2",
            2,
            "prev_hash does not match",
        ),
    ],
)
def test_verify_names_the_first_broken_row(
    db_engine: Engine, tmp_path: Path, tamper: str, broken_row: int, why: str
) -> None:
    _fill(db_engine, 5)
    with db_engine.begin() as conn:
        for statement in tamper.split(";"):
            conn.execute(text(statement))
    done = _cli_verify(db_engine, tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"attestor: VerificationError: audit log broken at row {broken_row}:"
    )
    assert why in lines[0]


def test_a_rewritten_chain_is_caught_only_by_an_anchor(db_engine: Engine, tmp_path: Path) -> None:
    """Whoever can write the database can rebuild a consistent chain; a head kept
    elsewhere (--anchor) still catches it."""
    _fill(db_engine, 3)
    with make_session_factory(db_engine)() as s:
        anchor = "{}:{}".format(*audit_store.head(s))
    factory = make_session_factory(db_engine)
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(
            text("UPDATE audit_head SET last_seq = 0, last_hash = :h"),
            {"h": audit_store.GENESIS_HASH},
        )
    with factory.begin() as s:  # a forged history, hashed correctly
        for i in range(3):
            audit.record(
                s,
                actor="token:forger",
                action="token.create",
                target=f"token:{i}",
                change={},
                now=NOW,
            )
    assert _cli_verify(db_engine, tmp_path).returncode == 0
    done = _cli_verify(db_engine, tmp_path, anchor)
    assert done.returncode == 1
    assert "differs from the anchor recorded for this row" in done.stderr


def test_concurrent_appenders_do_not_fork_the_chain(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    per_thread, threads = 15, 4
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with factory.begin() as s:
                    if i % 3 == 0:
                        # Policy changes take the same lock first, then number versions.
                        doc = policy_doc(f"p{n}", label=str(i), host=f"h{i}.example")
                        policies.apply(s, doc, actor=f"token:w{n}", now=NOW, source="t")
                    else:
                        audit.record(
                            s,
                            actor=f"token:w{n}",
                            action="key.create",
                            target=f"key:{n}-{i}",
                            change={"i": i},
                            now=NOW,
                        )
        except BaseException as e:  # reported below, with the chain's state
            failures.append(e)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert failures == []
    with factory() as s:
        report = audit.verify_chain(s)
        entries = list(audit_store.iter_entries(s))
        versions = {p.id: p.version for p in policies.list_policies(s)}
    assert report.ok, report
    assert [e.seq for e in entries] == list(range(1, per_thread * threads + 1))
    assert len({e.prev_hash for e in entries}) == len(entries)
    assert versions == {f"p{n}": 5 for n in range(threads)}
