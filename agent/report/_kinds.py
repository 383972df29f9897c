# SPDX-License-Identifier: Apache-2.0
"""The closed vocabularies of violations and layer statuses.

The violation kinds live in the core (:mod:`attestor.violation_kinds`), shared
with the server; they are re-exported here with the agent's groupings. The
schemas (``violation``, ``container-report``) carry the same enums for other
readers, and a unit test keeps them equal.
"""

from __future__ import annotations

from typing import Literal, get_args

from attestor.violation_kinds import VIOLATION_KINDS, ViolationKind

__all__ = [
    "AGENT_KINDS",
    "DRIFT_KINDS",
    "FILE_KINDS",
    "LAYER_KINDS",
    "LAYER_STATUSES",
    "SCAN_KINDS",
    "VIOLATION_KINDS",
    "CheckResult",
    "CheckScope",
    "LayerStatus",
    "ViolationKind",
]

FILE_KINDS: frozenset[str] = frozenset(
    {"content", "mode", "owner", "link", "added", "removed", "xattr", "type"}
)
LAYER_KINDS: frozenset[str] = frozenset({"unattested", "bad-signature", "revoked", "unverified"})
#: A part of a layer or upperdir the agent could not check (never taken as clean).
SCAN_KINDS: frozenset[str] = frozenset({"unscannable"})
#: About the agent itself (its trust in the server's keys), not a container.
AGENT_KINDS: frozenset[str] = frozenset({"trust-anomaly"})
DRIFT_KINDS: frozenset[str] = (
    frozenset(VIOLATION_KINDS) - FILE_KINDS - LAYER_KINDS - SCAN_KINDS - AGENT_KINDS
)

#: ``valid``: the signature verified against a pinned key; ``pending``: the
#: agent asked the server to issue one and has no answer yet.
LayerStatus = Literal["valid", "pending", "unattested", "bad-signature", "revoked"]
LAYER_STATUSES: frozenset[str] = frozenset(get_args(LayerStatus))

CheckScope = Literal["layer", "upperdir"]
CheckResult = Literal["clean", "violations", "error"]
