# SPDX-License-Identifier: Apache-2.0
"""Find the system binaries the harness needs, or skip (fail under CI)."""

from __future__ import annotations

import glob
import os
import shutil
from typing import NoReturn

import pytest

# Debian puts some daemons outside a normal user's PATH.
_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_PG_GLOB = "/usr/lib/postgresql/*/bin"


def in_ci() -> bool:
    """Return whether we run under CI (``CI=true``), where skips become failures."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason`` on a developer machine; fail it under CI.

    Raises:
        pytest.skip.Exception: outside CI.
        pytest.fail.Exception: under ``CI=true``.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing prerequisites fail the suite)", pytrace=False)
    pytest.skip(reason)


def search_path() -> str:
    """Return PATH extended with sbin and the newest PostgreSQL bin directory."""
    # Newest PostgreSQL major first, so a stray old cluster's binaries lose.
    pg_dirs = sorted(glob.glob(_PG_GLOB), key=_pg_major, reverse=True)
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), *_EXTRA_DIRS, *pg_dirs]
    seen: dict[str, None] = dict.fromkeys(d for d in dirs if d)
    return os.pathsep.join(seen)


def find(name: str) -> str | None:
    """Return the absolute path of binary ``name``, or None when absent."""
    found = shutil.which(name, path=search_path())
    return os.path.abspath(found) if found else None


def require(name: str) -> str:
    """Return the absolute path of binary ``name``.

    Raises:
        pytest.skip.Exception: when missing, outside CI.
        pytest.fail.Exception: when missing, under ``CI=true``.
    """
    found = find(name)
    if found is None:
        unavailable(f"binary {name!r} not found (run scripts/bootstrap.sh or `make test`)")
    return found


def require_static(name: str) -> str:
    """Return the path of ``name`` when it is statically linked (runs in a bare image).

    Raises:
        pytest.skip.Exception: when missing or dynamic, outside CI.
        pytest.fail.Exception: when missing or dynamic, under ``CI=true``.
    """
    path = require(name)
    with open(path, "rb") as f:
        head = f.read(4096)
    # A dynamic ELF names its loader (PT_INTERP) within the first page.
    if b"/ld-linux" in head or b"/ld-musl" in head:
        unavailable(f"{path} is dynamically linked; install the {name}-static package")
    return path


def require_root(why: str = "containerd, overlayfs") -> None:
    """Require an effective uid of 0; ``why`` names what needs it, for the reason.

    Raises:
        pytest.skip.Exception: when not root, outside CI.
        pytest.fail.Exception: when not root, under ``CI=true``.
    """
    if os.geteuid() != 0:
        unavailable(f"needs root ({why}), running as uid {os.geteuid()}")


def _pg_major(path: str) -> int:
    part = path.rstrip("/").split("/")[-2]
    return int(part) if part.isdigit() else 0
