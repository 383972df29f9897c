# SPDX-License-Identifier: Apache-2.0
"""Where the policies in force come from: anything with ``current() -> PolicySet``.

:class:`LoadedPolicies` is the set read from the policy directory once at
start; ``attestor.services.policy_db.DatabasePolicies`` reads the centrally
managed set from the database and follows its changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from attestor.policy import PolicySet, load_policies

__all__ = ["LoadedPolicies", "PolicySource"]


class PolicySource(Protocol):
    """The policies in force now."""

    def current(self) -> PolicySet:
        """The set to evaluate against now."""
        ...


@dataclass(frozen=True)
class LoadedPolicies:
    """A set loaded once (a change needs a restart).

    ``attestor worker`` loads it at start-up, as ``attestor serve`` does for
    its API, so a change to the policy directory takes effect when both
    restart.
    """

    policies: PolicySet

    @classmethod
    def load(cls, directory: Path) -> LoadedPolicies:
        """Load the policy directory.

        Raises:
            ConfigError: the directory is unreadable or holds an invalid policy.
        """
        return cls(load_policies(directory))

    def current(self) -> PolicySet:
        """The set loaded at start."""
        return self.policies
