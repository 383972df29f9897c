# SPDX-License-Identifier: Apache-2.0
"""attestor: layer attestations issued from the registry, verified at runtime."""

__version__ = "0.1.0"
