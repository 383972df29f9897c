# SPDX-License-Identifier: Apache-2.0
"""Durable file writes for the agent's on-disk state (spool, revocation state), and reads.

POSIX only promises that a file survives a crash once the file has been
fsync'd, and that a rename survives once its directory has been fsync'd; a
rename over the old name makes the switch atomic. Nothing in the standard
library bundles the four steps, hence these few lines.

Errors are the ``OSError`` of the failing call: each caller says what it was
writing when it translates them (``Unavailable``), or decides to carry on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from attestor.errors import Error, InvalidInput
from attestor.json_strict import loads_strict

__all__ = [
    "TMP_SUFFIX",
    "fsync_dir",
    "read_state",
    "seal",
    "unseal",
    "write_atomic",
    "write_synced",
]

_T = TypeVar("_T")
log = logging.getLogger("attestor.agent")

#: Suffix of the temporary file :func:`write_atomic` renames into place.
TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Flush the directory ``path`` itself, so renames and unlinks in it are durable.

    Raises:
        OSError: the directory cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create (or truncate) ``path``, write all of ``data`` and fsync it.

    ``mode`` applies to a new file (filtered by the umask).

    Raises:
        OSError: the disk refused (full, read-only, I/O error).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Writes ``<path>.tmp``, fsyncs it, renames it over ``path`` and fsyncs the
    directory: after a crash ``path`` holds the old bytes or the new ones,
    never a mix. The directory must exist.

    Raises:
        OSError: the disk refused (full, read-only, I/O error).
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    write_synced(tmp, data, mode=mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_state(
    path: Path, parse: Callable[[bytes], _T], *, what: str, level: int = logging.WARNING
) -> _T | None:
    """Parse a state file an earlier run wrote; None if absent, unreadable or damaged.

    A file that cannot be read or parsed is logged at ``level`` (the caller
    decides how much starting afresh costs), never raised.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.log(level, f"{what} unreadable", extra={"path": str(path), "error": e.strerror})
        return None
    try:
        return parse(data)
    except Error as e:
        log.log(level, f"{what} discarded", extra={"path": str(path), "error": e.message})
        return None


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(member: str, file_format: int, body: object) -> bytes:
    """The bytes of a state file: ``{"format", "sha256", member: body}``.

    The sha256 over the canonical body lets :func:`unseal` tell a torn or
    hand-edited file from a good one, beyond what the atomic rename promises.
    """
    return _canonical(
        {
            "format": file_format,
            "sha256": hashlib.sha256(_canonical(body)).hexdigest(),
            member: body,
        }
    )


def unseal(
    data: bytes,
    member: str,
    file_format: int,
    *,
    what: str,
    max_bytes: int,
    old_formats: Collection[int] = (),
) -> dict[str, Any]:
    """The body of a file :func:`seal` wrote, checked whole.

    Raises:
        InvalidInput: not JSON, other members, an unknown (or, with its own
            message, an older) format, a body that is not an object, or a
            sha256 that does not match.
    """
    outer = loads_strict(data, what=what, max_bytes=max_bytes)
    if not isinstance(outer, dict) or set(outer) != {"format", "sha256", member}:
        raise InvalidInput(f"expected an object with format, sha256 and {member}")
    found = outer["format"]
    if type(found) is int and found in old_formats:
        raise InvalidInput(f"format {found} of an older agent")
    if type(found) is not int or found != file_format:
        raise InvalidInput(f"unknown format {str(found)[:20]!r}")
    body = outer[member]
    if not isinstance(body, dict):
        raise InvalidInput(f"{member}: expected an object")
    if hashlib.sha256(_canonical(body)).hexdigest() != outer["sha256"]:
        raise InvalidInput(f"sha256 of the {member} does not match (torn or edited file)")
    return body
