# SPDX-License-Identifier: Apache-2.0
"""Typed violations and container reports, validated against
``schemas/violation.schema.json`` and ``schemas/container-report.schema.json``.
"""

from agent.report._container import (
    API_VERSION,
    ContainerReport,
    ImageRef,
    IntegrityCheck,
    LayerReport,
)
from agent.report._kinds import (
    AGENT_KINDS,
    DRIFT_KINDS,
    FILE_KINDS,
    LAYER_KINDS,
    LAYER_STATUSES,
    SCAN_KINDS,
    VIOLATION_KINDS,
    CheckResult,
    CheckScope,
    LayerStatus,
    ViolationKind,
)
from agent.report._time import format_time, parse_time
from agent.report._violation import MAX_DETAIL_BYTES, Violation

__all__ = [
    "API_VERSION",
    "AGENT_KINDS",
    "DRIFT_KINDS",
    "FILE_KINDS",
    "LAYER_KINDS",
    "LAYER_STATUSES",
    "MAX_DETAIL_BYTES",
    "SCAN_KINDS",
    "VIOLATION_KINDS",
    "CheckResult",
    "CheckScope",
    "ContainerReport",
    "ImageRef",
    "IntegrityCheck",
    "LayerReport",
    "LayerStatus",
    "Violation",
    "ViolationKind",
    "format_time",
    "parse_time",
]
