# SPDX-License-Identifier: Apache-2.0
"""The spool survives SIGKILL in the middle of a burst of writes.

A real child process puts records as fast as it can and prints each id once
``put`` has returned; the parent kills it with SIGKILL at a random moment,
several times over the same directory. After each restart every id the child
was told about is present exactly once with its record, nothing else is
duplicated, and a torn last record is skipped without losing earlier ones.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.spool import Deliverer, Spool, SpoolEntry

ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import sys
from pathlib import Path
from agent.spool import Spool

spool = Spool.open(Path(sys.argv[1]))
round_no, n = int(sys.argv[2]), 0
while True:
    # Even rounds use put, odd rounds put_many with bursts of 1..20 records.
    size = 1 if round_no % 2 == 0 else n % 20 + 1
    batch = [
        {"round": round_no, "n": k, "pad": "x" * (k % 7) * 300} for k in range(n, n + size)
    ]
    ids = [spool.put(batch[0])] if round_no % 2 == 0 else spool.put_many(batch)
    sys.stdout.write("".join(f"{i} {round_no} {k}\\n" for k, i in enumerate(ids, n)))
    sys.stdout.flush()
    n += size
"""


def _run_and_kill(directory: Path, round_no: int, kill_after: int) -> list[tuple[str, int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(round_no)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked: list[tuple[str, int, int]] = []
    try:
        assert proc.stdout is not None
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            assert line, f"child exited early with {proc.wait()}"
            ident, r, n = line.decode().split()
            acked.append((ident, int(r), int(n)))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # Lines written before the kill but not yet read are acknowledged too.
    rest = proc.stdout.read().decode() if proc.stdout else ""
    # Only whole lines count; text after the last newline was never acknowledged.
    for line in rest.split("\n")[:-1]:
        ident, r, n = line.split()
        acked.append((ident, int(r), int(n)))
    return acked


def test_sigkill_mid_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    rng = random.Random(7)  # noqa: S311 - test data
    acked: list[tuple[str, int, int]] = []
    for round_no in range(4):
        acked += _run_and_kill(directory, round_no, kill_after=rng.randint(80, 200))

        with Spool.open(directory) as spool:
            entries = list(spool.pending())
        got = [(e.id, int(e.record["round"]), int(e.record["n"])) for e in entries]
        assert len({e.id for e in entries}) == len(entries)
        assert len({(r, n) for _, r, n in got}) == len(got), "a record is duplicated"
        assert [e.id for e in entries] == sorted(e.id for e in entries)
        for e in entries:
            assert e.record["pad"] == "x" * (int(e.record["n"]) % 7) * 300
        # Every put that returned to the caller is there, with its record.
        assert set(acked) <= set(got)
        # Records the child was never told about can only be those of the put
        # (or burst) that the kill interrupted after a rename.
        unreported = set(got) - set(acked)
        for _, r, n in unreported:
            last = max(a[2] for a in acked if a[1] == r)
            assert last < n <= last + 20
        assert not list(directory.glob("*.tmp"))

    # A torn last record (e.g. a file renamed before its blocks reached the disk).
    last = max(directory.glob("*.rec"))
    torn_id = f"{int(last.name[:-4]) + 1:020d}"
    (directory / f"{torn_id}.rec").write_bytes(last.read_bytes()[:-5])
    received: list[tuple[int, int]] = []

    def send(batch: Sequence[SpoolEntry]) -> None:
        received.extend((int(e.record["round"]), int(e.record["n"])) for e in batch)

    with Spool.open(directory) as spool:
        before = len(spool)
        result = Deliverer(spool, send, batch_records=50).drain(0.0)
        assert result.drained
        assert spool.stats().quarantined == 1
        assert len(spool) == 0
    assert result.delivered == before - 1
    assert len(received) == len(set(received)) == before - 1
    assert {(r, n) for _, r, n in acked} <= set(received)
    assert (directory / "corrupt" / f"{torn_id}.rec").exists()
