# SPDX-License-Identifier: Apache-2.0
"""The agent's durable outbox for violations and reports.

:class:`Spool` keeps records on disk (one fsync'd file per record) until they
are acknowledged; :class:`Deliverer` drains it through a ``send(batch)``
callable with backoff. At-least-once delivery from here plus the server's
dedupe by violation id gives exactly-once delivery end to end.
"""

from agent.spool._deliver import Backoff, Deliverer, DrainResult, Sender
from agent.spool._spool import Spool, SpoolEntry, SpoolLimits, SpoolStats

__all__ = [
    "Backoff",
    "Deliverer",
    "DrainResult",
    "Sender",
    "Spool",
    "SpoolEntry",
    "SpoolLimits",
    "SpoolStats",
]
