# SPDX-License-Identifier: Apache-2.0
"""Admission policies: which registries and repositories may be attested.

Load once with :func:`load_policies`, then call :func:`evaluate` (returns a
frozen :class:`Decision`) or :func:`require_admitted` (raises
``PolicyDenied``). Pure: no network, no database.
"""

from attestor.policy.evaluate import evaluate, require_admitted
from attestor.policy.loader import load_policies, parse_policy
from attestor.policy.model import (
    Decision,
    ImageRef,
    Policy,
    PolicySet,
    RegistryRule,
)

__all__ = [
    "Decision",
    "ImageRef",
    "Policy",
    "PolicySet",
    "RegistryRule",
    "evaluate",
    "load_policies",
    "parse_policy",
    "require_admitted",
]
