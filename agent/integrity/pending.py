# SPDX-License-Identifier: Apache-2.0
"""When each layer was first seen ``pending``: the grace-period clock, kept on disk.

A layer whose attestation cannot be looked up becomes an ``unverified``
violation once it has been pending longer than the grace period. If that
clock lived only in memory, whoever can make the agent restart (or keep it in
a crash loop) would reset it at each start and keep a layer pending, and so
unchecked, forever. So the first sighting of each pending layer is written to
``<state_dir>/pending-since.json`` (tmp file, fsync, rename, fsync of the
directory) whenever the set changes, and read back at start.

The file is bounded (entries and bytes). A file that cannot be read or parsed
is logged and the clock starts afresh; the rename makes a torn write
impossible, so only an outside hand can damage it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Final

from agent._fs import read_state, write_atomic
from attestor.digests import Digest, parse_digest
from attestor.errors import InvalidInput
from attestor.json_strict import loads_strict

__all__ = ["MAX_PENDING", "PENDING_FILE", "PendingClock"]

log = logging.getLogger("attestor.agent")

PENDING_FILE: Final = "pending-since.json"
#: Layers remembered; a node runs far fewer distinct layers than this.
MAX_PENDING: Final = 50_000
#: ~100 bytes per entry; a larger file is refused before it is parsed.
_MAX_BYTES: Final = 8 * 1024 * 1024
_FORMAT: Final = 1


class PendingClock:
    """First sighting of each pending layer; durable when given a path.

    Args:
        path: the state file (None: in memory only, e.g. ``check --once``).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._since: dict[Digest, datetime] = {}

    @classmethod
    def open(cls, path: Path) -> PendingClock:
        """Load the first sightings an earlier run recorded (a bad file is logged)."""
        clock = cls(path)
        clock._since = read_state(path, _parse, what="pending clock", level=logging.ERROR) or {}
        return clock

    def since(self, digest: Digest, now: datetime) -> datetime:
        """When ``digest`` was first seen pending (``now`` if it was not pending before)."""
        first = self._since.get(digest)
        if first is not None:
            return first
        if len(self._since) >= MAX_PENDING:
            # Not remembered: the layer's clock starts again at each sighting,
            # so say so loudly; this many pending layers is not a real node.
            log.error("pending clock full", extra={"entries": len(self._since)})
            return now
        self._since[digest] = now
        self._save()
        return now

    def clear(self, digest: Digest) -> None:
        """``digest`` is no longer pending."""
        if self._since.pop(digest, None) is not None:
            self._save()

    def retain(self, live: Collection[Digest]) -> None:
        """Forget layers no container uses any more."""
        gone = [d for d in self._since if d not in live]
        for digest in gone:
            del self._since[digest]
        if gone:
            self._save()

    def __len__(self) -> int:
        return len(self._since)

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {
            "format": _FORMAT,
            "since": {d: t.isoformat() for d, t in sorted(self._since.items())},
        }
        try:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self._path, json.dumps(doc, separators=(",", ":")).encode())
        except OSError as e:
            # The clock still runs in memory; only a restart would reset it.
            log.error("pending clock not saved", extra={"path": str(self._path), "error": str(e)})


def _parse(data: bytes) -> dict[Digest, datetime]:
    """The ``since`` map of a state file.

    Raises:
        InvalidInput: if it is not a well-formed state file.
    """
    doc = loads_strict(data, what="pending clock", max_bytes=_MAX_BYTES)
    if not isinstance(doc, dict) or set(doc) != {"format", "since"}:
        raise InvalidInput("expected an object with format and since")
    if type(doc["format"]) is not int or doc["format"] != _FORMAT:
        raise InvalidInput(f"unknown format {str(doc['format'])[:20]!r}")
    raw = doc["since"]
    if not isinstance(raw, dict) or len(raw) > MAX_PENDING:
        raise InvalidInput(f"since must be an object of at most {MAX_PENDING} layers")
    out: dict[Digest, datetime] = {}
    for digest, stamp in raw.items():
        parse_digest(digest)
        if not isinstance(stamp, str):
            raise InvalidInput(f"time of {digest} is not a string")
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError as e:
            raise InvalidInput(f"time of {digest} is not ISO 8601: {e}") from e
        if when.tzinfo is None:
            raise InvalidInput(f"time of {digest} has no time zone")
        out[Digest(digest)] = when
    return out
