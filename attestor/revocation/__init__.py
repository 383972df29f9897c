# SPDX-License-Identifier: Apache-2.0
"""Revocation records and matching them against attestations.

Pure core (no I/O). The :class:`attestor.verify.Verifier` rejects attestations
a :class:`RevocationSet` matches. The signed feed that carries revocations to
agents is :mod:`attestor.revocation_feed`, a layer above signing and verify
(it is signed and checked with them), so this package stays below verify.
Spec: ``docs/revocation-feed.md``.
"""

from attestor.revocation.match import AttestationMeta, RevocationSet
from attestor.revocation.model import (
    KINDS,
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    SubjectTarget,
    Target,
    TimeWindowTarget,
    parse_target,
)

__all__ = [
    "KINDS",
    "AttestationMeta",
    "AttestationTarget",
    "ImageTarget",
    "KeyTarget",
    "PolicyVersionTarget",
    "Revocation",
    "RevocationSet",
    "SubjectTarget",
    "Target",
    "TimeWindowTarget",
    "parse_target",
]
