# SPDX-License-Identifier: Apache-2.0
"""The closed vocabulary of runtime violations, shared by the agent and the server (pure).

``schemas/violation.schema.json`` carries the same enum, in the same order, for
other readers; a unit test keeps the two equal. The agent reports these kinds
and the server stores and filters by them, so this is the one list in code.
The cap on a violation's ``detail`` is shared the same way: the agent refuses
what the server would.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["MAX_DETAIL_BYTES", "VIOLATION_KINDS", "ViolationKind"]

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
    # The check itself could not be made, which is never taken as clean:
    # part of a layer or upperdir could not be read ("unscannable"; the rest
    # is still checked), or a layer's attestation could not be looked up for
    # longer than the agent's grace period ("unverified").
    "unscannable",
    "unverified",
    # The agent refused the server's signing key set (not signed by a pinned
    # key, or a rollback): about the agent's trust, not one container, so it
    # names no container, image, layer or path.
    "trust-anomaly",
]
#: Every kind, in the schema's order (a tuple, so error messages list it stably).
VIOLATION_KINDS: Final[tuple[ViolationKind, ...]] = get_args(ViolationKind)
#: Largest ``detail`` of one violation, as compact UTF-8 JSON; keeps one
#: violation well under the agent spool's and the server's per-record caps.
MAX_DETAIL_BYTES: Final = 16 * 1024
