# SPDX-License-Identifier: Apache-2.0
"""Runtime integrity: attested manifests vs snapshot directories, and drift.

``attestation`` finds and verifies each layer's attestation; ``layers``
scans a snapshot incrementally and compares it with the attested manifest;
``drift`` classifies a container's rw layer; ``sweep`` runs both over the
containers ``inventory`` lists; ``ledger`` remembers findings between sweeps;
``budget`` caps the hashing rate.
"""

from agent.integrity.attestation import (
    AttestationSource,
    LayerAttestation,
    ServerAttestations,
    verify_layer,
)
from agent.integrity.budget import Budget, BudgetConfig
from agent.integrity.drift import DriftFinding, find_drift, merged_view
from agent.integrity.inventory import ContainerFilter, TrackedContainer, list_tracked
from agent.integrity.layers import LayerCheck, LayerChecker
from agent.integrity.ledger import Ledger
from agent.integrity.sweep import ContainerResult, LayerResult, Sweeper, SweepResult, UpperCheck

__all__ = [
    "AttestationSource",
    "Budget",
    "BudgetConfig",
    "ContainerFilter",
    "ContainerResult",
    "DriftFinding",
    "LayerAttestation",
    "LayerCheck",
    "LayerChecker",
    "LayerResult",
    "Ledger",
    "ServerAttestations",
    "SweepResult",
    "Sweeper",
    "TrackedContainer",
    "UpperCheck",
    "find_drift",
    "list_tracked",
    "merged_view",
    "verify_layer",
]
