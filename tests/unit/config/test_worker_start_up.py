# SPDX-License-Identifier: Apache-2.0
"""`attestor worker` loads the policies at start-up: a bad one stops it with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_worker_exits_2_on_an_invalid_policy_before_taking_a_job(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "dev.yaml").write_text("not: [a policy\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ATTESTOR_DATA_DIR": str(tmp_path / "var"),
        "ATTESTOR_POLICY_DIR": str(policies),
        # Nothing listens there: the start must stop before Redis is needed.
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "attestor", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "invalid policy" in lines[0] and str(policies / "dev.yaml") in lines[0]
