# SPDX-License-Identifier: Apache-2.0
"""Raw file-hashing and walking baselines shared by the manifest and agent benchmarks."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["bare_walk", "hashlib_baseline", "tuned_baseline"]


def hashlib_baseline(root: Path) -> tuple[float, int]:
    """Seconds and bytes for ``hashlib.file_digest`` over every file (the issue's baseline)."""
    start = time.perf_counter()
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                digest = hashlib.file_digest(f, "sha256")
                total += f.tell()
            digest.hexdigest()
    return time.perf_counter() - start, total


def tuned_baseline(paths: list[str]) -> float:
    """Seconds to hash ``paths`` listed beforehand, one reused buffer, no stat or xattr."""
    buffer = bytearray(256 * 1024)
    view, buffers = memoryview(buffer), [buffer]
    start = time.perf_counter()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        h = hashlib.sha256()
        while n := os.readv(fd, buffers):
            h.update(view[:n])
        os.close(fd)
        h.hexdigest()
    return time.perf_counter() - start


def bare_walk(root: Path) -> float:
    """Seconds for a bare ``os.scandir`` + lstat walk of ``root``."""
    start = time.perf_counter()
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return time.perf_counter() - start
