# SPDX-License-Identifier: Apache-2.0
"""Only ``attestor/sigstore_internals.py`` touches sigstore-python's non-public API.

What counts as touching it, in any other module of ``attestor`` or ``agent``:

* importing an underscore module or name of sigstore (``sigstore._internal``,
  ``from sigstore.verify.verifier import _validate...``);
* the attribute ``._inner`` on any object (sigstore's wrappers keep their
  model there; no module of ours uses the name for anything else);
* an attribute whose underscore name sigstore-python defines on one of its
  classes (``bundle._dsse_envelope``, ``super()._establish_time``), unless
  the module defines that name itself (our own ``self._trust``);
* a method with such a name in a class that subclasses a sigstore class
  (an override of a private step);
* a call of a sigstore class whose constructor sigstore documents as private
  (``TrustedRoot(model)``: use the ``.from_*`` class methods or a wrapper);
* a string naming an underscore module (``importlib.resources.files("sigstore._store")``).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECKED = ("attestor", "agent")
#: The one module allowed to touch sigstore-python's internals.
ADAPTER = "attestor/sigstore_internals.py"
#: sigstore classes whose constructor its docstring marks "@private" / "@api private".
PRIVATE_CONSTRUCTORS = frozenset(
    {
        "sigstore.models.Bundle",
        "sigstore.models.ClientTrustConfig",
        "sigstore.models.SigningConfig",
        "sigstore.models.TransparencyLogEntry",
        "sigstore.models.TrustedRoot",
        "sigstore.dsse.Envelope",
    }
)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@cache
def sigstore_private_names() -> frozenset[str]:
    """Underscore names sigstore-python defines on its classes: methods and ``self._x``."""
    spec = importlib.util.find_spec("sigstore")
    assert spec is not None and spec.origin is not None
    names: set[str] = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    if isinstance(node.value, ast.Name) and node.value.id == "self":
                        names.add(node.attr)
    return frozenset(n for n in names if _is_private(n))


def _sigstore_imports(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """``(line, dotted path, local name)`` of each import from sigstore."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sigstore":
                    yield node.lineno, alias.name, alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] == "sigstore":
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}", alias.asname or alias.name


def _own_names(tree: ast.AST) -> set[str]:
    """Underscore names the module defines itself: functions, methods, ``self._x``."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
    return own


def _overrides(
    tree: ast.AST, sigstore_names: set[str], private: frozenset[str]
) -> Iterator[tuple[int, str]]:
    """Private sigstore methods and attributes a subclass of a sigstore class defines."""
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        if not {ast.unparse(b).split(".")[0] for b in cls.bases} & sigstore_names:
            continue
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in private:
                yield node.lineno, node.name
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and node.attr in private
            ):
                yield node.lineno, node.attr


def internals_used(source: str, rel: str) -> list[str]:
    """Each use of a sigstore internal in one module's source, as ``file:line: what``."""
    tree = ast.parse(source, filename=rel)
    private = sigstore_private_names()
    imports = list(_sigstore_imports(tree))
    local = {name: dotted for _, dotted, name in imports}
    own = _own_names(tree)
    overrides = list(_overrides(tree, set(local), private))
    overridden = {name for _, name in overrides}
    found = [
        f"{rel}:{line}: import {dotted}"
        for line, dotted, _ in imports
        if any(_is_private(part) for part in dotted.split("."))
    ]
    found += [f"{rel}:{line}: overrides sigstore's {name}" for line, name in overrides]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            node.attr == "_inner"
            or (node.attr in private and (node.attr not in own or node.attr in overridden))
        ):
            found.append(f"{rel}:{node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and local.get(node.func.id) in PRIVATE_CONSTRUCTORS
        ):
            found.append(f"{rel}:{node.lineno}: {node.func.id}(...) (private constructor)")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("sigstore.")
            and any(_is_private(part) for part in node.value.split("."))
        ):
            found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return sorted(set(found))


def _code_files() -> Iterator[tuple[str, str]]:
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel != ADAPTER:
                yield rel, path.read_text(encoding="utf-8")


def test_only_the_adapter_touches_sigstore_internals() -> None:
    found = [f for rel, source in _code_files() for f in internals_used(source, rel)]
    assert found == [], (
        "use sigstore's public API, or add a wrapper to attestor/sigstore_internals.py "
        "(with a test in tests/unit/sigstore_internals/):\n" + "\n".join(found)
    )


def test_the_adapter_is_where_the_internals_are() -> None:
    # The check above must be able to see what the adapter does.
    source = (ROOT / ADAPTER).read_text(encoding="utf-8")
    found = internals_used(source, ADAPTER)
    assert any("import sigstore._internal" in f for f in found), found
    assert any("._inner" in f for f in found), found
    assert any("'sigstore._store'" in f for f in found), found
    assert any("TrustedRoot(...)" in f for f in found), found


def test_sigstore_private_names_are_read_from_the_installed_package() -> None:
    names = sigstore_private_names()
    assert {"_establish_time", "_verify_common_signing_cert", "_dsse_envelope", "_inner"} <= names
    assert not any(n.startswith("__") for n in names)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from sigstore._internal.trust import KeyringPurpose\n", "import sigstore._internal"),
        ("import sigstore._utils\n", "import sigstore._utils"),
        ("from sigstore import _utils\n", "import sigstore._utils"),
        ("from sigstore.verify.verifier import _validate_x\n", "verifier._validate_x"),
        ("x = bundle._inner.media_type\n", "._inner"),
        ("x = anything._inner\n", "._inner"),
        ("env = bundle._dsse_envelope\n", "._dsse_envelope"),
        ("t = verifier._establish_time(b)\n", "._establish_time"),
        (
            "from sigstore.verify import Verifier\n"
            "class V(Verifier):\n"
            "    def _establish_time(self, b):\n"
            "        return super()._establish_time(b)\n",
            "overrides sigstore's _establish_time",
        ),
        (
            "from sigstore.verify import Verifier\n"
            "class V(Verifier):\n"
            "    def __init__(self, root):\n"
            "        self._trusted_root = root\n",
            "overrides sigstore's _trusted_root",
        ),
        (
            "from sigstore.models import TrustedRoot\nr = TrustedRoot(model)\n",
            "TrustedRoot(...) (private constructor)",
        ),
        (
            "from sigstore.models import TransparencyLogEntry as E\nE(model)\n",
            "E(...) (private constructor)",
        ),
        (
            "import importlib.resources\nimportlib.resources.files('sigstore._store')\n",
            "'sigstore._store'",
        ),
    ],
)
def test_each_form_is_found(source: str, expected: str) -> None:
    found = internals_used(source, "attestor/x.py")
    assert any(expected in f for f in found), found


@pytest.mark.parametrize(
    "source",
    [
        "from sigstore.models import Bundle\nb = Bundle.from_json(raw)\n",
        "from sigstore.models import TrustedRoot\nr = TrustedRoot.from_file(p)\n",
        "class C:\n    def __init__(self):\n        self._trusted_root = 1\n"
        "    def f(self):\n        return self._trusted_root\n",
        "from sigstore.verify import Verifier\nclass V(Verifier):\n    def helper(self): ...\n",
        "x = 'sigstore.models'\n",
        "from attestor.sigstore_internals import log_entry_model\n",
    ],
)
def test_public_use_is_not_flagged(source: str) -> None:
    assert internals_used(source, "attestor/x.py") == []
