# SPDX-License-Identifier: Apache-2.0
"""Test harness: real throwaway services and OCI image building for the tests.

The fixtures in ``tests/conftest.py`` are the public face of this package;
see the "Test harness contract" in CONTRIBUTING.md.
"""

from __future__ import annotations

__all__: list[str] = []
