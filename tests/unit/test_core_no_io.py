# SPDX-License-Identifier: Apache-2.0
"""The core imports no module that talks to the network.

import-linter's forbidden contract for the core (pyproject.toml) can name only
whole external packages: ``sigstore`` itself must stay allowed (offline bundle
verification uses ``sigstore.verify``, ``sigstore.models`` and the Rekor and
timestamp entry parsers), and so must ``urllib.parse``. This check names the
network modules themselves: signing against Fulcio and Rekor, OIDC token
fetching, TUF refresh, and the standard library's sockets and HTTP clients.
Keyless signing lives in :mod:`attestor.keyless`, outside the core.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules that open connections or fetch credentials (prefixes, dotted).
NETWORK = (
    "sigstore.sign",
    "sigstore.oidc",
    "sigstore._internal.fulcio",
    "sigstore._internal.oidc",
    "sigstore._internal.tuf",
    "sigstore._internal.rekor.client",
    "sigstore._internal.rekor.client_v2",
    "socket",
    "ssl",
    "urllib.request",
    "http.client",
    "requests",
    "urllib3",
    "httpx",
)


def _core() -> list[str]:
    """The core's modules, as the import-linter contract for the core lists them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    core = [c for c in contracts if c["name"].startswith("The core does no")]
    assert len(core) == 1, "the core's forbidden contract is missing from pyproject.toml"
    modules: list[str] = core[0]["source_modules"]
    return modules


def _files(module: str) -> list[Path]:
    base = ROOT.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")]


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every absolute module (and module.name) imported, at any depth of the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _is_network(name: str) -> bool:
    return any(name == n or name.startswith(f"{n}.") for n in NETWORK)


def test_the_core_list_names_existing_modules() -> None:
    for module in _core():
        files = _files(module)
        assert files and all(f.is_file() for f in files), module


def test_no_core_module_imports_a_network_module() -> None:
    found = []
    for module in _core():
        for path in _files(module):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found += [
                f"{path.relative_to(ROOT)}:{line}: {name}"
                for line, name in _imported(tree)
                if _is_network(name)
            ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("import socket", True),
        ("from urllib.request import urlopen", True),
        ("from urllib.parse import urlsplit", False),
        ("import http.client", True),
        ("from http import client", True),
        ("from http import HTTPStatus", False),
        ("from sigstore.sign import SigningContext", True),
        ("from sigstore import oidc", True),
        ("from sigstore.oidc import IdentityToken", True),
        ("from sigstore.verify import Verifier", False),
        ("from sigstore._internal.timestamp import TimestampSource", False),
        ("def f():\n    from sigstore._internal.fulcio import client", True),
    ],
)
def test_the_check_catches_network_imports(source: str, caught: bool) -> None:
    names = [name for _, name in _imported(ast.parse(source))]
    assert any(_is_network(n) for n in names) is caught
