# SPDX-License-Identifier: Apache-2.0
"""Background jobs: the ``JobRunner`` protocol, ``InlineRunner``, ``RQRunner`` and tasks."""

__all__: list[str] = []
