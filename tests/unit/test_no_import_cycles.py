# SPDX-License-Identifier: Apache-2.0
"""No module-level import cycle in attestor or agent (scripts/import_cycles.py).

The layers contracts in pyproject.toml refuse cycles between layers; this also
catches a cycle inside one layer, which import-linter does not look for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "import_cycles.py"


def _main() -> object:
    spec = importlib.util.spec_from_file_location("import_cycles", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("package", ["attestor", "agent"])
def test_no_module_cycles(package: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    code = main([package])  # type: ignore[operator]
    out = capsys.readouterr().out
    assert "0 module cycle(s)" in out, out
    assert "packages importing each other" not in out, out
    assert code == 0


def test_a_cycle_is_found() -> None:
    main = _main()
    cycles = main.__globals__["_cycles"]  # type: ignore[attr-defined]
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert cycles({"a": ["b"], "b": []}) == []
