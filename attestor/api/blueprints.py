# SPDX-License-Identifier: Apache-2.0
"""The one list of API blueprints; a new API module is registered by adding it here."""

from __future__ import annotations

__all__ = ["BLUEPRINT_MODULES"]

#: Modules that define ``blp`` (a flask-smorest Blueprint), registered in this order.
BLUEPRINT_MODULES: tuple[str, ...] = (
    "attestor.api.health",
    "attestor.api.tokens",
    "attestor.api.jobs",
    "attestor.api.agents",
    "attestor.api.violations",
    "attestor.api.reports",
    "attestor.api.attestations",
    "attestor.api.manifests",
    "attestor.api.keys",
    "attestor.api.verifications",
    "attestor.api.revocations",
    "attestor.api.policies",
    "attestor.api.audit",
)
