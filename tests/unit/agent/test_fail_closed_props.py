# SPDX-License-Identifier: Apache-2.0
"""Property: however many unscannable names a tree holds, every tampered file is still found."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.integrity.layers import LayerChecker
from attestor.manifest import ManifestLimits, manifest_from_snapshot

_FILES = [f"d{d}/f{f}" for d in range(3) for f in range(4)]
# Bytes that cannot start or continue valid UTF-8 the way they are placed.
_bad_names = st.binary(min_size=1, max_size=8).map(lambda b: b"\xff" + b.replace(b"/", b"_"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tampered=st.sets(st.sampled_from(_FILES), max_size=5),
    bad=st.lists(
        st.tuples(st.integers(0, 3), _bad_names.filter(lambda b: 0 not in b), st.booleans()),
        max_size=6,
    ),
    path_limit=st.sampled_from([4096, 12]),
)
def test_every_tampered_file_is_found_beside_any_unscannable_entries(
    tampered: set[str], bad: list[tuple[int, bytes, bool]], path_limit: int
) -> None:
    root = Path(tempfile.mkdtemp(prefix="failclosed-"))
    try:
        for path in _FILES:
            (root / path).parent.mkdir(exist_ok=True)
            (root / path).write_bytes(path.encode())
        attested = manifest_from_snapshot(root)
        for path in tampered:
            (root / path).write_bytes(b"tampered " + path.encode())
        made: set[bytes] = set()
        for where, name, is_dir in bad:
            parent = os.fsencode(root) + (b"/d%d" % where if where < 3 else b"")
            target = os.path.join(parent, name)
            if name in made or os.path.lexists(target):
                continue
            made.add(name)
            if is_dir:
                os.mkdir(target)
                with open(os.path.join(target, b"inside"), "wb") as f:
                    f.write(b"x")  # never seen: its directory is unscannable
            else:
                with open(target, "wb") as f:
                    f.write(b"x")
        limits = ManifestLimits(max_path_bytes=path_limit)
        result = LayerChecker(limits=limits).check(root, attested)
        # Every tampered file is found whatever sits beside it, and each bad
        # entry is one record (a bad directory's contents are never walked).
        assert {(c.path, c.kind) for c in result.changes} == {(p, "content") for p in tampered}
        assert len(result.unscannable) == len(made)
        assert all(u.path is not None and "\\x" in u.path for u in result.unscannable)
    finally:
        shutil.rmtree(root)
