# SPDX-License-Identifier: Apache-2.0
"""sigstore-python is imported only by what verifies or signs Sigstore bundles.

Importing it costs the agent about 26 MB of RSS (measured: ``import
attestor.verify`` 34 MB, ``import attestor.verify.bundle`` 60 MB), and most
nodes verify key-signed envelopes only. ``attestor.verify`` (the DSSE
verifier) and the agent's entry point must not pull it in; bundle
verification is imported explicitly (``attestor.verify.bundle``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _loads_sigstore(module: str) -> bool:
    code = (
        f"import sys, {module}; "
        "print(any(m == 'sigstore' or m.startswith('sigstore.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


@pytest.mark.parametrize("module", ["attestor.verify", "agent.cli"])
def test_module_does_not_import_sigstore(module: str) -> None:
    assert _loads_sigstore(module) is False, f"import {module} loads sigstore-python"


@pytest.mark.parametrize("module", ["attestor.verify.bundle", "attestor.sigstore_internals"])
def test_bundle_verification_does(module: str) -> None:
    # The check above can see sigstore when it is there.
    assert _loads_sigstore(module) is True
