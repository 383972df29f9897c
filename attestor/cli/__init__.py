# SPDX-License-Identifier: Apache-2.0
"""The ``attestor`` console script (click)."""

__all__: list[str] = []
