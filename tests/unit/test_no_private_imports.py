# SPDX-License-Identifier: Apache-2.0
"""No module of ``attestor`` or ``agent`` imports another package's private parts.

A name or module whose name starts with one underscore is private to the
package that holds it: its own modules (and its subpackages) may use it, no
one else. What another package needs is made public there (a module without
the underscore, or a name in a public module's ``__all__``). This check keeps
new reach-ins out; import-linter cannot express it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("attestor", "agent")

#: Reach-ins that cannot be removed yet, each with the reason: "file: module.name".
ALLOWED: frozenset[str] = frozenset()


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _module_of(root: Path, path: Path) -> tuple[str, str]:
    """The dotted name of the module at ``path`` and of the package it is in."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _owner(root: Path, dotted: list[str]) -> str:
    """The package a private part belongs to: itself if a package, else its parent's."""
    where = root.joinpath(*dotted)
    if (where / "__init__.py").is_file():
        return ".".join(dotted)
    return ".".join(dotted[:-1])


def _imports(tree: ast.AST, package: str) -> Iterator[tuple[int, list[str]]]:
    """Each imported dotted path (module, or module + name), relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            for alias in node.names:
                yield node.lineno, [*module, alias.name]


def private_reach_ins(root: Path, tops: tuple[str, ...] = CHECKED) -> list[str]:
    """Every import, under ``root``'s ``tops``, of a private part of another package.

    Returns:
        ``"<file>:<line>: <dotted path> (private to <package>)"`` lines, sorted.
    """
    found = []
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            _, package = _module_of(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, dotted in _imports(tree, package):
                if dotted[0] not in tops:
                    continue  # third-party privates are another check's business
                private = next((i for i, part in enumerate(dotted) if _is_private(part)), None)
                if private is None:
                    continue
                owner = _owner(root, dotted[:private])
                if package == owner or package.startswith(owner + "."):
                    continue
                rel = path.relative_to(root).as_posix()
                found.append(f"{rel}:{line}: {'.'.join(dotted)} (private to {owner})")
    return sorted(found)


def test_no_module_imports_another_packages_private_parts() -> None:
    found = [f for f in private_reach_ins(ROOT) if f.split(" (")[0] not in ALLOWED]
    assert found == [], "make these public where they live:\n" + "\n".join(found)


def test_the_allow_list_names_only_reach_ins_that_still_exist() -> None:
    present = {f.split(" (")[0] for f in private_reach_ins(ROOT)}
    assert ALLOWED <= present, f"stale allow-list entries: {sorted(ALLOWED - present)}"


#: A module of another package than attestor.core inside the same top package.
OTHER = "attestor/other/x.py"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("importer", "source", "expected"),
    [
        ("agent/x.py", "from attestor.core._impl import f\n", "attestor.core._impl.f"),
        ("agent/x.py", "import attestor.core._impl\n", "attestor.core._impl"),
        ("agent/x.py", "from attestor.core import _impl\n", "attestor.core._impl"),
        ("agent/x.py", "from attestor import _util\n", "attestor._util"),
        (
            OTHER,
            "from attestor.core.api import _helper\n",
            "attestor.core.api._helper",
        ),
        (OTHER, "from ..core._impl import f\n", "attestor.core._impl.f"),
        (
            OTHER,
            "if True:\n    from attestor.core._impl import f\n",
            "attestor.core._impl.f",
        ),
    ],
)
def test_each_form_of_reach_in_is_found(
    tmp_path: Path, importer: str, source: str, expected: str
) -> None:
    root = _tree(
        tmp_path,
        {
            "attestor/__init__.py": "",
            "attestor/_util.py": "",
            "attestor/core/__init__.py": "",
            "attestor/core/_impl.py": "def f(): ...\n",
            "attestor/core/api.py": "def _helper(): ...\n",
            "attestor/other/__init__.py": "",
            "agent/__init__.py": "",
            importer: source,
        },
    )
    line = source.count("\n")
    owner = "attestor" if expected == "attestor._util" else "attestor.core"
    assert private_reach_ins(root) == [f"{importer}:{line}: {expected} (private to {owner})"]


def test_a_package_uses_its_own_private_parts(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "attestor/__init__.py": "",
            "attestor/_util.py": "",
            "attestor/core/__init__.py": "from attestor.core._impl import f\n",
            "attestor/core/_impl.py": "from . import api\nfrom .api import _helper\n",
            "attestor/core/api.py": "from attestor.core._impl import f\ndef _helper(): ...\n",
            "attestor/core/sub/__init__.py": "from attestor.core._impl import f\n",
            "attestor/core/sub/deep.py": "from ..._util import x\nfrom attestor import _util\n",
            "agent/__init__.py": "import os._private_thing\nfrom sigstore import _utils\n",
        },
    )
    assert private_reach_ins(root) == []
