# SPDX-License-Identifier: Apache-2.0
"""``python -m attestor`` runs the ``attestor`` console script."""

from __future__ import annotations

from attestor.cli.main import main

if __name__ == "__main__":
    main()
