# SPDX-License-Identifier: Apache-2.0
"""DatabasePolicies: every process sees the stored set, reloads when it changed, fails closed."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from attestor.errors import ConfigError, Unavailable
from attestor.services import policies
from attestor.services.policy_db import PROPAGATION_BOUND_S, DatabasePolicies
from attestor.store.db import make_session_factory
from tests.policy_docs import policy_doc

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _apply(engine: Engine, doc: bytes) -> None:
    with make_session_factory(engine).begin() as s:
        policies.apply(s, doc, actor="token:t", now=NOW, source="test")


def _hosts(source: DatabasePolicies) -> dict[str, list[str]]:
    return {p.id: [r.host for r in p.registries] for p in source.current().policies}


def test_reloads_only_after_the_check_interval(db_engine: Engine) -> None:
    clock = Clock()
    source = DatabasePolicies(make_session_factory(db_engine), monotonic=clock)
    assert source.current().policies == ()
    _apply(db_engine, policy_doc("a"))
    clock.t += 0.5
    assert _hosts(source) == {}  # within the interval: no database read
    clock.t += 0.6
    assert _hosts(source) == {"a": ["r.example"]}
    assert source.generation == 1
    _apply(db_engine, policy_doc("a", label="2", host="q.example"))
    _apply(db_engine, policy_doc("b"))
    clock.t += 1.1
    assert _hosts(source) == {"a": ["q.example"], "b": ["r.example"]}
    with make_session_factory(db_engine).begin() as s:
        policies.delete(s, "a", actor="token:t", now=NOW)
    clock.t += 1.1
    assert _hosts(source) == {"b": ["r.example"]}
    assert source.current().source == "database (generation 4)"


def test_fails_closed_when_the_database_cannot_be_read(db_engine: Engine) -> None:
    clock = Clock()
    source = DatabasePolicies(make_session_factory(db_engine), monotonic=clock)
    _apply(db_engine, policy_doc("a"))
    assert _hosts(source) == {"a": ["r.example"]}
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE policy_generation"))
    clock.t += 2  # the check fails, but the set is younger than the bound
    assert _hosts(source) == {"a": ["r.example"]}
    clock.t += PROPAGATION_BOUND_S
    with pytest.raises(Unavailable):
        source.current()


def test_a_stored_document_the_engine_refuses_stops_evaluation(db_engine: Engine) -> None:
    source = DatabasePolicies(make_session_factory(db_engine), monotonic=Clock())
    _apply(db_engine, policy_doc("a"))
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE policy_versions SET document = :d"), {"d": b"kind: Policy\n"})
    with pytest.raises(ConfigError, match="stored policy no longer valid"):
        source.current()


_WATCHER = """
import json, sys, time
from attestor.services.policy_db import DatabasePolicies
from attestor.store.db import make_engine, make_session_factory
source = DatabasePolicies(make_session_factory(make_engine(sys.argv[1])))
seen = None
while True:
    now = {p.id: [r.host for r in p.registries] for p in source.current().policies}
    if now != seen:
        print(json.dumps(now), flush=True)
        seen = now
    time.sleep(0.05)
"""


def _line(proc: subprocess.Popen[str], timeout: float) -> object:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no change seen by the other process within {timeout} s"
    return json.loads(proc.stdout.readline())


def test_another_process_sees_a_change_within_the_bound(db_engine: Engine) -> None:
    """A second process (as a second replica) on the same database, never restarted."""
    url = db_engine.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, url],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert _line(proc, 30) == {}
        for doc, want in (
            (policy_doc("a"), {"a": ["r.example"]}),
            (policy_doc("a", label="2", host="q.example"), {"a": ["q.example"]}),
        ):
            changed = time.monotonic()
            _apply(db_engine, doc)
            assert _line(proc, PROPAGATION_BOUND_S) == want
            assert time.monotonic() - changed < PROPAGATION_BOUND_S
    finally:
        proc.kill()
        proc.wait()
