# SPDX-License-Identifier: Apache-2.0
"""On-disk framing of one spool record: a header with length and checksum.

``ATSPOOL1 <payload length> <sha256 hex of payload>\\n<payload>``. The rename
protocol already hides half-written files; the framing also catches what a
crash or a lying disk can still leave behind (a file renamed before its data
reached the disk, zero-filled blocks, a truncated copy made by an operator).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_HEADER", "decode", "encode"]

_MAGIC = b"ATSPOOL1"
_HEADER_RE = re.compile(rb"^ATSPOOL1 (0|[1-9][0-9]{0,11}) ([0-9a-f]{64})$")
#: Longest header line, newline included.
MAX_HEADER = 96


def encode(payload: bytes) -> bytes:
    """Frame ``payload``."""
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    return b"%s %d %s\n%s" % (_MAGIC, len(payload), digest, payload)


def decode(data: bytes) -> bytes | None:
    """The payload of a framed record, or None if ``data`` is not one whole record.

    None covers a missing or malformed header and a length or checksum that
    does not match; the spool quarantines such a file.
    """
    newline = data.find(b"\n", 0, MAX_HEADER)
    if newline < 0:
        return None
    match = _HEADER_RE.match(data[:newline])
    if match is None:
        return None
    payload = data[newline + 1 :]
    if len(payload) != int(match.group(1)):
        return None
    if hashlib.sha256(payload).hexdigest().encode("ascii") != match.group(2):
        return None
    return payload
