# SPDX-License-Identifier: Apache-2.0
"""Result rows and job progress on PostgreSQL: concurrent chunks, a chunk run twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from attestor.services.bulk_verify import (
    BulkItem,
    BulkLimits,
    NullCache,
    plan_chunks,
    run_chunk,
)
from attestor.store import jobs as job_store
from attestor.store import verifications as results_store
from attestor.store.db import make_engine, make_session_factory, upgrade
from tests.unit.bulk._envelopes import digest

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_concurrent_and_repeated_chunks_count_once(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    # Content is irrelevant here (each is rejected); storage and counting are not.
    items = [
        BulkItem(kind="envelope", document={"n": i}, artifact_digest=digest("a"))
        for i in range(400)
    ]
    chunks = plan_chunks(items, chunk_size=50)
    with factory.begin() as session:
        job = job_store.create_job(session, kind="verify", payload={}, now=NOW)
        job_store.update_job(session, job.id, progress={"total": len(items)}, now=NOW)

    def run(chunk: list[dict[str, object]]) -> None:
        run_chunk(factory, job.id, chunk, cache=NullCache(), limits=BulkLimits(), now=lambda: NOW)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks + chunks[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    with factory() as session:
        row = job_store.get_job(session, job.id)
        rows = results_store.list_results(session, job.id, offset=0, limit=1000)
    assert row.status == "finished"
    assert row.progress == {"total": 400, "done": 400, "verified": 0, "rejected": 400}
    assert [r.index for r in rows] == list(range(400))
    engine.dispose()
