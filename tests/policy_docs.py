# SPDX-License-Identifier: Apache-2.0
"""Small valid policy documents for the policy management tests."""

from __future__ import annotations


def policy_doc(policy_id: str = "team", label: str = "1", host: str = "r.example") -> bytes:
    """A minimal valid policy admitting ``host``."""
    return (
        "apiVersion: attestor.dev/v1alpha1\n"
        "kind: Policy\n"
        f"id: {policy_id}\n"
        f'version: "{label}"\n'
        "registries:\n"
        f'  - host: "{host}"\n'
        "    require_signatures: false\n"
    ).encode()
