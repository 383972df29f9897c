# SPDX-License-Identifier: Apache-2.0
"""The inotify watch never watches a directory outside the snapshot through a symlink.

A new directory is announced by name (an event of its parent); by the time
the watch adds it, the parent may have been renamed away and replaced by a
symlink. Real directories and a real inotify instance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.integrity.watch import Watcher
from tests.unit.agent.test_watch import QUIET, Calls, make_watcher, rearm, tree

__all__ = ["make_watcher"]  # fixture used here


def test_a_new_directory_behind_a_swapped_parent_is_not_watched(
    tmp_path: Path, make_watcher: Callable[..., tuple[Watcher, Calls]]
) -> None:
    root = tree(tmp_path / "r", dirs=1)
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    w, calls = make_watcher()
    w.sync([root])
    before = w.status().watches
    # "a/b" was just created (its event is being handled) and "a" is now a
    # symlink to a directory of the host.
    (root / "a").symlink_to(outside)
    assert calls.event.wait(2.0)  # the symlink's own creation is a change
    rearm(w)
    calls.reset()
    with w._lock:  # what the event handler does for a new directory "a/b"
        assert w._add_tree(root, root / "a" / "b")
    assert w.status().watches == before
    (outside / "b" / "host-file").write_bytes(b"not in the snapshot")
    assert not calls.event.wait(QUIET)
