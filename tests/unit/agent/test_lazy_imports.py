# SPDX-License-Identifier: Apache-2.0
"""The agent's entry point stays lean: what it must not load at import.

Resident memory is the agent's budget on every node (bench/bench_agent_imports.py
shows what each import costs). These modules are either not used by the agent
at all (grpcio: containerd is reached through agent.containerd._grpc on h2;
requests: the server client is on urllib3) or only for one feature, loaded
when that feature is used (sigstore: keyless layers only). A module-level
import of any of them, anywhere under ``agent.cli``, fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: Top-level packages ``import agent.cli`` must not load, and why they cost.
NOT_AT_IMPORT = {
    "grpc": "grpcio's C core, threads and asyncio support (about 12 MB)",
    "asyncio": "loaded by grpcio; the agent has no event loop",
    "requests": "requests, charset_normalizer, idna (about 4 MB)",
    "charset_normalizer": "requests' encoding guesser",
    "sigstore": "keyless verification, loaded for keyless layers only (about 15 MB)",
}


def _loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("entry", ["agent.cli", "agent.daemon", "agent.check"])
def test_entry_point_loads_none_of_the_heavy_packages(entry: str) -> None:
    loaded = _loaded_after(f"import {entry}")
    assert entry.split(".")[0] in loaded
    assert {name: why for name, why in NOT_AT_IMPORT.items() if name in loaded} == {}


def test_keyless_verification_still_loads_sigstore_when_used() -> None:
    # The lazy import is real: the keyless path brings sigstore in.
    loaded = _loaded_after("import agent.cli\nfrom attestor.verify.bundle import BundleVerifier")
    assert "sigstore" in loaded
