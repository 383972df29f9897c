# SPDX-License-Identifier: Apache-2.0
"""Agents, violations and reports on both databases, including racing replays."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text

from attestor.errors import InvalidInput, NotFound
from attestor.store import agents, reports, violations
from attestor.store.db import (
    _alembic_config,
    current_revision,
    make_session_factory,
    upgrade,
)
from attestor.store.models import ReportModel, ViolationModel
from tests.alembic_head import head_revision

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
IMAGE = "sha256:" + "a" * 64


def new_violation(**changes: object) -> violations.NewViolation:
    values: dict[str, object] = {
        "violation_id": str(uuid.uuid4()),
        "container_id": "ctr-1",
        "image_digest": IMAGE,
        "layer_digest": None,
        "path": "etc/passwd",
        "kind": "content",
        "detail": {"n": 1, "nested": {"ok": True}},
        "detected_at": NOW,
    }
    values.update(changes)
    return violations.NewViolation(**values)  # type: ignore[arg-type]


def count(engine: Engine, model: type) -> int:
    with make_session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_migration_0002_down_and_up(db_engine: Engine) -> None:
    config = _alembic_config(db_engine)
    command.downgrade(config, "0001")
    assert current_revision(db_engine) == "0001"
    assert {"violations", "reports"}.isdisjoint(inspect(db_engine).get_table_names())
    assert "namespaces" not in {c["name"] for c in inspect(db_engine).get_columns("agents")}
    upgrade(db_engine, "0002")
    assert {"violations", "reports"} <= set(inspect(db_engine).get_table_names())
    unique = inspect(db_engine).get_unique_constraints("violations")
    assert [u["column_names"] for u in unique] == [["agent_id", "violation_id"]]
    upgrade(db_engine)
    assert current_revision(db_engine) == head_revision()


def test_batches_dedupe_by_agent_and_id(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    a, b, c = new_violation(), new_violation(kind="unattested", path=None), new_violation()
    with factory.begin() as s:
        assert violations.add_violations(s, agent_id="n1", violations=[a, b], now=NOW) == (
            violations.BatchResult(2, 0)
        )
    with factory.begin() as s:
        result = violations.add_violations(s, agent_id="n1", violations=[b, c, c], now=NOW)
    assert result == violations.BatchResult(accepted=1, duplicates=2)
    with factory.begin() as s:
        # Another agent's id space is its own.
        assert violations.add_violations(s, agent_id="n2", violations=[a], now=NOW).accepted == 1
        with pytest.raises(InvalidInput, match="kind"):
            violations.add_violations(
                s, agent_id="n1", violations=[new_violation(), new_violation(kind="x")], now=NOW
            )
        with pytest.raises(InvalidInput):
            violations.add_violations(s, agent_id="n1", violations=[], now=NOW)
    assert count(db_engine, ViolationModel) == 4
    with factory() as s:
        page = violations.list_violations(s, violations.ViolationFilter(agent_id="n1"), limit=2)
        assert [v.violation_id for v in page.items] == [c.violation_id, b.violation_id]
        assert page.next is not None
        rest = violations.list_violations(
            s, violations.ViolationFilter(agent_id="n1"), limit=2, cursor=page.next
        )
        assert [v.violation_id for v in rest.items] == [a.violation_id]
        assert rest.next is None
        assert rest.items[0].detail == {"n": 1, "nested": {"ok": True}}
        assert rest.items[0].detected_at == NOW
        since = violations.list_violations(
            s, violations.ViolationFilter(since=NOW + timedelta(seconds=1))
        )
        assert since.items == []


def test_racing_replays_store_each_violation_once(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    batch = [new_violation() for _ in range(50)]
    results: list[violations.BatchResult] = []

    def replay() -> None:
        with factory.begin() as s:
            results.append(violations.add_violations(s, agent_id="n1", violations=batch, now=NOW))

    with factory.begin() as s:
        first = violations.add_violations(s, agent_id="n1", violations=batch, now=NOW)
        # The replay starts while the first delivery is still uncommitted: it must
        # wait for it (row or database lock), then find every row already there.
        racer = threading.Thread(target=replay)
        racer.start()
        time.sleep(0.3)
    racer.join(timeout=30)
    assert not racer.is_alive()
    assert first == violations.BatchResult(50, 0)
    assert results == [violations.BatchResult(0, 50)]
    assert count(db_engine, ViolationModel) == 50


def test_agents_upsert_heartbeat_and_silence(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        agents.register_agent(
            s, agent_id="n1", hostname="h", mode="node", version="1", namespaces=["a"], now=NOW
        )
        agents.register_agent(
            s, agent_id="n2", hostname="h2", mode="sidecar", version="1", namespaces=[], now=NOW
        )
    later = NOW + timedelta(minutes=5)
    with factory.begin() as s:
        again = agents.register_agent(
            s, agent_id="n1", hostname="h", mode="node", version="2", namespaces=["b"], now=later
        )
        beat = agents.record_heartbeat(
            s, "n2", containers=1, layers=2, pending_violations=3, now=later
        )
        with pytest.raises(NotFound):
            agents.record_heartbeat(s, "n3", containers=0, layers=0, pending_violations=0, now=NOW)
        with pytest.raises(InvalidInput):
            agents.register_agent(
                s, agent_id="n4", hostname="h", mode="pod", version="1", namespaces=[], now=NOW
            )
    assert (again.registered_at, again.last_registered_at) == (NOW, later)
    assert (again.version, again.namespaces) == ("2", ("b",))
    assert beat.last_heartbeat_at == later
    with factory() as s:
        now = later + timedelta(minutes=1)
        assert agents.list_agents(s, now=now, silent_for=timedelta(seconds=30)) == [
            agents.get_agent(s, "n1"),
            agents.get_agent(s, "n2"),
        ]
        assert agents.list_agents(s, now=now, silent_for=timedelta(minutes=2)) == []
        assert len(agents.list_agents(s, now=now)) == 2


def test_reports_latest_and_finalized(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)

    def new(at: datetime, *, finalized: bool = False) -> reports.NewReport:
        return reports.NewReport(
            container_id="c1",
            image_name="app",
            image_digest=IMAGE,
            finalized=finalized,
            generated_at=at,
            body={"generated_at": at.isoformat(), "finalized": finalized},
        )

    with factory.begin() as s:
        one = reports.save_report(s, agent_id="n1", report=new(NOW), now=NOW)
    with factory.begin() as s:
        two = reports.save_report(s, agent_id="n1", report=new(NOW + timedelta(seconds=1)), now=NOW)
        stale = reports.save_report(
            s, agent_id="n1", report=new(NOW - timedelta(seconds=1)), now=NOW
        )
    assert one.id == two.id == stale.id
    assert stale.generated_at == NOW + timedelta(seconds=1)
    with factory.begin() as s:
        final = reports.save_report(
            s, agent_id="n1", report=new(NOW + timedelta(seconds=2), finalized=True), now=NOW
        )
        replay = reports.save_report(
            s, agent_id="n1", report=new(NOW + timedelta(seconds=2), finalized=True), now=NOW
        )
    assert final.id == replay.id
    assert count(db_engine, ReportModel) == 1
    with factory() as s:
        got = reports.get_report(s, final.id)
        assert got.finalized
        assert got.body == {
            "generated_at": (NOW + timedelta(seconds=2)).isoformat(),
            "finalized": True,
        }
        page = reports.list_reports(s, reports.ReportFilter(finalized=True))
        assert [r.id for r in page.items] == [final.id]


def test_racing_reports_keep_one_latest(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    errors: list[BaseException] = []

    def send(offset: int) -> None:
        try:
            with factory.begin() as s:
                reports.save_report(
                    s,
                    agent_id="n1",
                    report=reports.NewReport(
                        container_id="c1",
                        image_name="app",
                        image_digest=IMAGE,
                        finalized=False,
                        generated_at=NOW + timedelta(seconds=offset),
                        body={"offset": offset},
                    ),
                    now=NOW,
                )
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with factory() as s:
        rows = s.scalars(select(ReportModel)).all()
        assert [(r.finalized, r.body) for r in rows] == [(False, {"offset": 5})]


def test_unknown_image_and_agent_level_findings_are_stored_as_null(
    db_engine: Engine,
) -> None:
    factory = make_session_factory(db_engine)
    gone = new_violation(kind="unverified", image_digest=None, path=None)
    trust = new_violation(
        kind="trust-anomaly", container_id=None, image_digest=None, path=None,
        detail={"source": "key-set", "reason": "refused"},
    )  # fmt: skip
    with factory.begin() as s:
        for bad in (
            new_violation(image_digest=None),  # a file finding names its image
            new_violation(kind="trust-anomaly", image_digest=None, path=None),  # and no container
            new_violation(kind="unverified", container_id=None, path=None),
        ):
            with pytest.raises(InvalidInput):
                violations.add_violations(s, agent_id="n1", violations=[gone, bad], now=NOW)
    assert count(db_engine, ViolationModel) == 0
    with factory.begin() as s:
        violations.add_violations(s, agent_id="n1", violations=[gone, trust], now=NOW)
    with factory() as s:
        rows = violations.list_violations(s, violations.ViolationFilter(agent_id="n1")).items
    assert {(r.kind, r.container_id, r.image_digest) for r in rows} == {
        ("unverified", "ctr-1", None),
        ("trust-anomaly", None, None),
    }
    # Stored as NULL, not as a stand-in value a filter or a reader could mistake.
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT kind, container_id, image_digest FROM violations"))
        assert set(stored.all()) == {("unverified", "ctr-1", None), ("trust-anomaly", None, None)}
