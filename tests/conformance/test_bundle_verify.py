# SPDX-License-Identifier: Apache-2.0
"""Every sigstore-conformance bundle-verify case, through ``attestor verify-bundle``.

Cases live in ``tests/assets/conformance/bundle-verify/`` (layout and defaults
in its README.md, origin in tests/assets/SOURCES.md);
``ATTESTOR_CONFORMANCE_DIRS`` (os.pathsep-separated) adds more case
directories, e.g. a checkout of the full upstream suite. Each case runs
twice: with the artifact path and with ``sha256:<hex>``. A ``_fail`` case must
be rejected (exit 1, one stderr line), any other must verify (exit 0).

The click command runs in-process (one subprocess costs about 0.65 s here, so
92 of them would cost a minute); a few cases also run the real
``python -m attestor.cli.verify_bundle`` entry point in a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from attestor.cli.verify_bundle import command
from tests.harness.binaries import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = REPO_ROOT / "tests" / "assets" / "conformance" / "bundle-verify"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
SUBPROCESS_SAMPLE = {"happy-path-v0.3", "managed-key-happy-path", "signature-mismatch_fail"}


def _roots() -> list[Path]:
    roots = [CASES]
    extra = os.environ.get("ATTESTOR_CONFORMANCE_DIRS", "")
    roots += [Path(p) for p in extra.split(os.pathsep) if p]
    return [r for r in roots if r.is_dir()]


def _cases() -> list[Path]:
    return [d for root in _roots() for d in sorted(root.iterdir()) if d.is_dir()]


def _args(case: Path, mode: str) -> list[str]:
    args = ["--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        args += ["--key", str(case / "key.pub")]
    else:
        identity = case / "identity"
        issuer = case / "issuer"
        args += [
            "--certificate-identity",
            identity.read_text().strip() if identity.exists() else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            issuer.read_text().strip() if issuer.exists() else DEFAULT_ISSUER,
        ]
    if (case / "trusted_root.json").exists():
        args += ["--trusted-root", str(case / "trusted_root.json")]
    artifact = case / "artifact" if (case / "artifact").exists() else case.parent / "a.txt"
    if mode == "digest":
        args.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    else:
        args.append(str(artifact))
    return args


def _require_cases() -> None:
    if not CASES.is_dir():
        unavailable(f"conformance cases not present: {CASES}")


_PARAMS = [
    pytest.param(case, mode, id=f"{case.name}-{mode}")
    for case in _cases()
    for mode in ("path", "digest")
] or [pytest.param(None, "path", id="no-cases")]


@pytest.mark.parametrize(("case", "mode"), _PARAMS)
def test_bundle_verify_case(case: Path | None, mode: str) -> None:
    _require_cases()
    assert case is not None
    result = CliRunner().invoke(command, _args(case, mode))
    stderr_lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.name.endswith("_fail"):
        assert result.exit_code == 1, f"{case.name} was not rejected: {result.stdout}"
        assert len(stderr_lines) == 1, stderr_lines
        assert stderr_lines[0].startswith("verification failed: ")
    else:
        assert result.exit_code == 0, f"{case.name} rejected: {result.stderr}"
        assert stderr_lines == []
        assert result.stdout.startswith("OK: ")


@pytest.mark.parametrize("name", sorted(SUBPROCESS_SAMPLE))
def test_bundle_verify_subprocess(name: str) -> None:
    _require_cases()
    case = CASES / name
    proc = subprocess.run(
        [sys.executable, "-m", "attestor.cli.verify_bundle", *_args(case, "digest")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    stderr_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if name.endswith("_fail"):
        assert proc.returncode == 1
        assert len(stderr_lines) == 1, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert stderr_lines == []


def test_usage_error_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "attestor.cli.verify_bundle", "--bundle", "x.json", "a.txt"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_staging_flag_uses_the_staging_root() -> None:
    _require_cases()
    case = CASES / "bundle-from-wrong-instance_fail"  # a valid *staging* bundle
    args = _args(case, "digest")
    assert CliRunner().invoke(command, args).exit_code == 1
    result = CliRunner().invoke(command, ["--staging", *args])
    assert result.exit_code == 0, result.stderr


def test_regex_identity_flags() -> None:
    _require_cases()
    case = CASES / "happy-path-v0.3"
    base = ["--bundle", str(case / "bundle.sigstore.json")]
    artifact = str(CASES / "a.txt")
    ok = CliRunner().invoke(
        command,
        [
            *base,
            "--certificate-identity-regexp",
            r"https://github\.com/sigstore-conformance/.*",
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            artifact,
        ],
    )
    assert ok.exit_code == 0, ok.stderr
    bad = CliRunner().invoke(
        command,
        [
            *base,
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            artifact,
        ],
    )
    assert bad.exit_code == 1
    assert len(bad.stderr.strip().splitlines()) == 1


def test_digest_that_is_also_a_path_is_a_path(tmp_path, monkeypatch) -> None:
    _require_cases()
    case = CASES / "happy-path-v0.3"
    digest = "sha256:" + hashlib.sha256((CASES / "a.txt").read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    Path(digest).write_bytes(b"not the artifact")
    args = _args(case, "digest")
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 1  # the protocol reads an existing path as a file
