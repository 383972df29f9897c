# SPDX-License-Identifier: Apache-2.0
"""Only :class:`attestor.verify.Verifier` checks a DSSE signature or parses a statement.

A second checker is how the same envelope came to be judged by different
rules depending on who checked it (the bundle path parsed statements with
plain ``json.loads`` and checked no predicate). This reads the source of the
server and the agent and fails on any new route around the verifier.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("attestor", "agent")

#: name imported -> the only modules allowed to import it.
ALLOWED_IMPORTS = {
    # The threshold signature check over the PAE: the Verifier's own step.
    "verify_envelope_signatures": {"attestor/verify/_verifier.py"},
    # The statement rules: the Verifier's own steps.
    "parse_statement": {"attestor/verify/_verifier.py"},
    "check_predicate": {"attestor/verify/_verifier.py"},
    "match_subject": {"attestor/verify/_verifier.py"},
    # Raw signature checks: the DSSE threshold check, and message signatures
    # (hashedrekord: a signature over the artifact digest, no envelope).
    "verify_signature": {"attestor/verify/dsse.py", "attestor/verify/_bundle_checks.py"},
}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) of every ``from module import name`` and ``import module``."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [(node.module or "", a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names]
    return found


def test_sources_are_found() -> None:
    # Guards the test itself: an empty walk would pass everything.
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert "attestor/verify/_verifier.py" in names
    assert "agent/integrity/_keyless.py" in names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_second_dsse_verifier(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    for module, name in _imports(tree):
        allowed = ALLOWED_IMPORTS.get(name)
        assert allowed is None or rel in allowed, f"{rel} imports {name} from {module}"
        # sigstore-python's DSSE check (sigstore.dsse._verify, reached through
        # the module): the envelope signature is the Verifier's to check.
        assert (module, name) not in {("sigstore", "dsse"), ("sigstore.dsse", "_verify")}, rel
        # Keyless signing builds sigstore.dsse.Statement to sign it, never to check it.
        assert module != "sigstore.dsse" or rel.startswith("attestor/keyless/"), rel
    for node in ast.walk(tree):
        # sigstore-python's Verifier.verify_dsse checks the signature itself.
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "verify_dsse", f"{rel}:{node.lineno} calls verify_dsse"
