# SPDX-License-Identifier: Apache-2.0
"""The inotify watch on real directories: events, debounce, new subdirs, limits."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.integrity.watch import Watcher, default_max_watches
from attestor.manifest import scan_snapshot
from tests.harness.binaries import require, unavailable

QUIET = 0.5  # seconds in which "nothing happens" is asserted


class Calls:
    """Counts ``on_ready`` calls; an Event for the first one since reset()."""

    def __init__(self) -> None:
        self.count = 0
        self.at: list[float] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.at.append(time.monotonic())
        self.event.set()

    def reset(self) -> None:
        self.event.clear()


@pytest.fixture
def make_watcher() -> Iterator[Callable[..., tuple[Watcher, Calls]]]:
    made: list[Watcher] = []

    def make(**kw: object) -> tuple[Watcher, Calls]:
        calls = Calls()
        kw.setdefault("debounce", 0.05)
        kw.setdefault("min_gap", 0.0)
        w = Watcher(on_ready=calls, **kw)  # type: ignore[arg-type]
        w.start()
        made.append(w)
        return w, calls

    yield make
    for w in made:
        w.close()


def tree(root: Path, dirs: int = 3) -> Path:
    """``root`` with ``dirs`` nested directories under it and a file in each."""
    d = root
    for i in range(dirs):
        d = d / f"d{i}"
        d.mkdir(parents=True)
        (d / "f").write_bytes(b"x")
    return root


def rearm(w: Watcher) -> None:
    """What the daemon does around a sweep."""
    w.begin_sweep()
    w.end_sweep(seconds=0.0)


def test_a_write_deep_in_the_tree_marks_its_root_ready(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    w, calls = make_watcher()
    w.sync([a, b])
    assert w.status().roots == 2 and w.status().watches == 8  # 2 x (root + 3 dirs)
    started = time.monotonic()
    (a / "d0/d1/d2/f").write_bytes(b"tampered")
    assert calls.event.wait(2.0)
    assert time.monotonic() - started < 1.0
    assert w.ready()
    assert w.begin_sweep() == {a}
    assert not w.ready()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: os.chmod(d / "d0/f", 0o4755),  # noqa: S103 - IN_ATTRIB
        lambda d: (d / "d0/f").unlink(),  # IN_DELETE
        lambda d: os.rename(d / "d0/f", d / "d0/g"),  # IN_MOVED_FROM/TO
        lambda d: os.symlink("/etc/shadow", d / "d0/link"),  # IN_CREATE
        lambda d: os.setxattr(d / "d0/f", "user.x", b"1"),  # IN_ATTRIB
        lambda d: os.utime(d / "d0/f", (0, 0)),  # IN_ATTRIB
    ],
    ids=["chmod", "unlink", "rename", "symlink", "xattr", "utime"],
)
def test_each_kind_of_change_is_seen(
    tmp_path: Path,
    make_watcher: Callable[..., tuple[Watcher, Calls]],
    change: Callable[[Path], None],
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher()
    w.sync([root])
    change(root)
    assert calls.event.wait(2.0)
    assert w.begin_sweep() == {root}


def test_reading_and_scanning_raise_no_event(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    # The sweep itself must not wake the loop again (no feedback loop).
    root = tree(tmp_path / "r", dirs=4)
    w, calls = make_watcher()
    w.sync([root])
    scan_snapshot(root, None)
    (root / "d0/f").read_bytes()
    assert not calls.event.wait(QUIET)
    assert calls.count == 0


def test_a_burst_of_writes_is_one_trigger(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher(debounce=0.2, max_delay=5.0)
    w.sync([root])
    for i in range(20):
        (root / "d0" / f"n{i}").write_bytes(b"x" * i)
        time.sleep(0.01)
    last = time.monotonic()
    assert calls.event.wait(2.0)
    assert calls.at[0] - last >= 0.15  # waited for the burst to settle
    time.sleep(QUIET)
    assert calls.count == 1
    assert w.begin_sweep() == {root}


def test_a_continuous_writer_triggers_after_max_delay(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher(debounce=0.2, max_delay=0.4)
    w.sync([root])
    started = time.monotonic()
    while not calls.event.is_set() and time.monotonic() - started < 3:
        (root / "log").write_bytes(b"line")  # never quiet for 0.2 s
        time.sleep(0.02)
    assert calls.event.is_set()
    assert 0.35 <= calls.at[0] - started < 1.5


def test_new_subdirectories_are_watched(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r", dirs=1)
    w, calls = make_watcher()
    w.sync([root])
    before = w.status().watches
    (root / "new/a/b").mkdir(parents=True)  # nested: one event, the walk adds the rest
    assert calls.event.wait(2.0)
    time.sleep(0.1)
    assert w.status().watches == before + 3
    rearm(w)
    calls.reset()
    (root / "new/a/b/planted").write_bytes(b"x")
    assert calls.event.wait(2.0)
    assert w.begin_sweep() == {root}
    w.end_sweep(seconds=0.0)
    # A directory moved in from outside the tree is watched too.
    outside = tree(tmp_path / "outside", dirs=2)
    calls.reset()
    os.rename(outside, root / "moved")
    assert calls.event.wait(2.0)
    rearm(w)
    calls.reset()
    time.sleep(0.1)
    (root / "moved/d0/d1/f").write_bytes(b"changed")
    assert calls.event.wait(2.0)


def test_sync_removes_watches_of_gone_roots(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    w, calls = make_watcher()
    w.sync([a, b])
    w.sync([b])
    assert (w.status().roots, w.status().watches) == (1, 4)
    (a / "d0/f").write_bytes(b"not watched any more")
    assert not calls.event.wait(QUIET)
    w.sync([])
    assert (w.status().roots, w.status().watches) == (0, 0)


def test_a_deleted_root_is_a_change_and_releases_its_watches(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher()
    w.sync([root])
    shutil.rmtree(root)
    assert calls.event.wait(2.0)
    time.sleep(0.1)
    assert w.status().watches == 0  # IN_IGNORED for each
    # Made again under the same path (a re-used snapshot directory): re-watched.
    tree(root, dirs=1)
    w.sync([root])
    assert w.status().watches == 2


def test_watch_triggered_sweeps_are_spaced_and_capped(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher(min_gap=0.8, max_duty=0.5, burst=0.2)
    w.sync([root])
    (root / "d0/f").write_bytes(b"first")
    assert calls.event.wait(2.0)  # credit available: at once
    assert w.begin_sweep() == {root}  # the sweep the watch triggered
    calls.reset()
    (root / "d0/f").write_bytes(b"during the sweep")
    assert not calls.event.wait(0.3)  # held while it runs
    ended = time.monotonic()
    w.end_sweep(seconds=0.05)
    assert calls.event.wait(3.0)
    assert calls.at[-1] - ended >= 0.75  # min_gap
    # A sweep longer than the credit: the next waits until max_duty pays it back
    # (credit 0.2 - 0.8 = -0.6 s, at 0.5 s per s: 1.2 s).
    assert w.begin_sweep() == {root}
    calls.reset()
    ended = time.monotonic()
    w.end_sweep(seconds=0.8)
    (root / "d0/f").write_bytes(b"again")
    assert calls.event.wait(4.0)
    assert calls.at[-1] - ended >= 1.15


def test_a_periodic_sweep_does_not_delay_the_watch(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r")
    w, calls = make_watcher(min_gap=5.0)
    w.sync([root])
    assert w.begin_sweep() == frozenset()  # the interval's sweep, not the watch's
    w.end_sweep(seconds=2.0)
    started = time.monotonic()
    (root / "d0/f").write_bytes(b"right after a periodic sweep")
    assert calls.event.wait(2.0)
    assert calls.at[0] - started < 1.0


def test_the_agents_cap_degrades_whole_roots_and_logs_once(
    tmp_path: Path,
    make_watcher: Callable[..., tuple[Watcher, Calls]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    big1, big2 = tree(tmp_path / "big1", dirs=5), tree(tmp_path / "big2", dirs=5)
    small = tree(tmp_path / "small", dirs=1)
    w, calls = make_watcher(max_watches=8)
    with caplog.at_level(logging.WARNING, logger="attestor.agent"):
        w.sync([small])
        w.sync([small, big1])  # small takes 2, big1 6
        w.sync([small, big1, big2])  # big2 does not fit
    status = w.status()
    assert status.degraded.keys() == {big2}
    assert "cap of 8" in status.degraded[big2]
    assert (status.roots, status.watches, status.max_watches) == (2, 8, 8)
    limit_logs = [r for r in caplog.records if "watch limit" in r.getMessage()]
    assert len(limit_logs) == 1
    (big2 / "d0/f").write_bytes(b"left to the sweeps")
    assert not calls.event.wait(QUIET)
    (small / "d0/f").write_bytes(b"watched")
    assert calls.event.wait(2.0)
    assert w.begin_sweep() == {small}
    # A root going away frees watches: the degraded one is retried.
    w.sync([small, big2])
    assert w.status().degraded == {} and w.status().watches == 8


def test_default_cap_is_half_the_kernel_limit(tmp_path: Path) -> None:
    (tmp_path / "limit").write_text("1000\n")
    assert default_max_watches(tmp_path / "limit") == 500
    assert default_max_watches(tmp_path / "missing") == 8192


_USERNS_PROBE = """
import json, sys, threading
from pathlib import Path
from agent.integrity.watch import Watcher
Path("/proc/sys/user/max_inotify_watches").write_text("4")
root = Path(sys.argv[1])
w = Watcher(on_ready=lambda: None, max_watches=1000)
w.sync([root / "small"])
w.sync([root / "small", root / "big"])
s = w.status()
print(json.dumps({"roots": s.roots, "watches": s.watches,
                  "degraded": {str(k): v for k, v in s.degraded.items()}}))
w.close()
"""


def test_the_kernel_limit_degrades_a_root(tmp_path: Path) -> None:
    # A real ENOSPC from inotify_add_watch without touching the host's limit:
    # a user namespace has its own max_inotify_watches, settable by its owner.
    unshare = require("unshare")
    tree(tmp_path / "small", dirs=1)
    tree(tmp_path / "big", dirs=5)
    res = subprocess.run(
        [unshare, "--user", "--map-root-user", sys.executable, "-c", _USERNS_PROBE, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    if res.returncode != 0 and "unshare failed" in res.stderr:
        unavailable(f"user namespaces unavailable: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["roots"] == 1 and got["watches"] == 2
    assert list(got["degraded"]) == [str(tmp_path / "big")]
    assert "max_user_watches" in got["degraded"][str(tmp_path / "big")]


def test_a_queue_overflow_asks_for_a_full_sweep(tmp_path: Path) -> None:
    # A real IN_Q_OVERFLOW: more events than the kernel queues, written before
    # the watch thread reads any. Events were lost, so begin_sweep cannot name
    # the changed directories: None tells the daemon to sweep everything.
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        unavailable(f"max_queued_events is {limit}: too many events to write in a test")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    calls = Calls()
    w = Watcher(on_ready=calls, debounce=0.05, min_gap=0.0)
    try:
        w.sync([a, b])
        files = [a / "d0/f", a / "d0/d1/f"]  # alternate: equal consecutive events merge
        for i in range(limit + 100):
            os.utime(files[i % 2], ns=(i, i))
        w.start()
        assert calls.event.wait(5.0)
        assert w.begin_sweep() is None
        w.end_sweep(seconds=0.0)
        # The overflow is reported once; the next change is named again.
        calls.reset()
        (b / "d0/f").write_bytes(b"again")
        assert calls.event.wait(5.0)
        changed = w.begin_sweep()
        assert changed is not None and b in changed
    finally:
        w.close()
