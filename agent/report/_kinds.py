# SPDX-License-Identifier: Apache-2.0
"""The closed vocabularies of violations and layer statuses.

These Literals are the one list in code; the schemas (``violation``,
``container-report``) carry the same enums for other readers, and a unit test
keeps them equal.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "DRIFT_KINDS",
    "FILE_KINDS",
    "LAYER_KINDS",
    "LAYER_STATUSES",
    "VIOLATION_KINDS",
    "CheckResult",
    "CheckScope",
    "LayerStatus",
    "ViolationKind",
]

ViolationKind = Literal[
    # A lower-layer file differs from its attested manifest entry
    # (the kinds of attestor.manifest.ChangeKind).
    "content",
    "mode",
    "owner",
    "link",
    "added",
    "removed",
    "xattr",
    "type",
    # The layer itself has no valid attestation.
    "unattested",
    "bad-signature",
    "revoked",
    # Drift in the container's writable layer (upperdir).
    "drift-modified",
    "drift-shadowed",
    "drift-deleted",
    "drift-new-executable",
]
VIOLATION_KINDS: frozenset[str] = frozenset(get_args(ViolationKind))
FILE_KINDS: frozenset[str] = frozenset(
    {"content", "mode", "owner", "link", "added", "removed", "xattr", "type"}
)
LAYER_KINDS: frozenset[str] = frozenset({"unattested", "bad-signature", "revoked"})
DRIFT_KINDS: frozenset[str] = VIOLATION_KINDS - FILE_KINDS - LAYER_KINDS

#: ``valid``: the signature verified against a pinned key; ``pending``: the
#: agent asked the server to issue one and has no answer yet.
LayerStatus = Literal["valid", "pending", "unattested", "bad-signature", "revoked"]
LAYER_STATUSES: frozenset[str] = frozenset(get_args(LayerStatus))

CheckScope = Literal["layer", "upperdir"]
CheckResult = Literal["clean", "violations", "error"]
