# SPDX-License-Identifier: Apache-2.0
"""CEL rules: compiled once when a policy is parsed, evaluated with bounds (pure).

cel-python is pure Python. Its tree-walking interpreter took 3-6 ms for two
small rules here, more than the whole evaluation's budget, so rules use its
transpiler (``CompiledRunner``): the CEL grammar is turned into Python lambdas
(literals are emitted with ``repr``, identifiers are grammar-restricted) and
run in 0.2-0.5 ms. Two things of that runner are not used as shipped:

* its ``evaluate`` writes the activation and the result into the
  ``celpy.evaluation`` module's globals, so two threads evaluating at once
  could read each other's result. We exec the same code object with a
  private copy of those globals per call instead;
* nothing bounds the work a rule does over attacker-controlled data.

Bounds, checked as follows (measured figures in docs/policies.md):

* an expression is at most ``MAX_EXPRESSION_CHARS`` characters and
  ``MAX_AST_NODES`` parse-tree nodes, with at most ``MAX_MACRO_DEPTH``
  comprehension macros (``all``, ``exists``, ``exists_one``, ``map``,
  ``filter``) nested in one another, and no ``string()``/``bytes()``
  conversion inside a macro (it could copy the whole config at every step),
  checked at parse time;
* at run time every element a macro visits is counted against
  ``MAX_MACRO_STEPS`` per evaluation, and so are ``matches()`` calls, the
  text they scan (``MAX_MATCHED_CHARS``) and what ``+`` builds
  (``MAX_BUILT_ITEMS``); past any of them the rule fails (closed).
  Without a loop construct, CEL does work only in macros, or proportional to
  the expression's length; ``matches()`` uses RE2 (linear time);
* the input is bounded by ``EvidenceLimits`` (``attestor.policy.evidence``).
"""

from __future__ import annotations

import operator
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import celpy
import celpy.celtypes
import celpy.evaluation
import lark
from celpy.adapter import json_to_cel
from celpy.evaluation import Activation

__all__ = [
    "MAX_AST_NODES",
    "MAX_EXPRESSION_CHARS",
    "MAX_MACRO_DEPTH",
    "MAX_MACRO_STEPS",
    "MAX_BUILT_ITEMS",
    "MAX_MATCHED_CHARS",
    "CelError",
    "CelInput",
    "CelProgram",
    "compile_cel",
]

MAX_EXPRESSION_CHARS = 2048
MAX_AST_NODES = 3000
MAX_MACRO_DEPTH = 2
MAX_MACRO_STEPS = 1_000
#: Characters all ``matches()`` calls of one evaluation may scan (twice the
#: largest config), so a nested macro cannot rescan a big string 1000 times.
MAX_MATCHED_CHARS = 1024 * 1024
#: Characters, bytes and list items that ``+`` may build in one evaluation.
MAX_BUILT_ITEMS = 4 * 1024 * 1024
# Conversions whose result can be as large as the whole input.
_CONVERSIONS = frozenset({"string", "bytes"})
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# CEL's built-in type names, usable as values (``type(x) == string``).
_TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"}
)
#: The variables a rule may name.
VARIABLES = ("image", "config", "signatures", "attestations")

_env_lock = threading.Lock()
_env: celpy.Environment | None = None


class CelError(Exception):
    """A rule that does not compile, or an evaluation that failed or ran out of budget."""


class CelInput:
    """Rule variables, converted to CEL values once and shared by many rules.

    Read-only once built; two threads converting the same variable at once
    only do the work twice.
    """

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._plain = variables
        self._converted: dict[str, Any] = {}

    def plain(self, name: str) -> Any:
        """The JSON value of ``name`` (``None`` when absent)."""
        return self._plain.get(name)

    def values(self, names: Iterable[str]) -> dict[str, Any]:
        """CEL values of ``names`` (only what a rule uses is converted)."""
        out = {}
        for name in names:
            if name not in self._converted:
                self._converted[name] = json_to_cel(self._plain.get(name))
            out[name] = self._converted[name]
        return out


_base: list[Activation] = []


def _base_activation() -> Activation:
    # Built once; each evaluation chains a child activation onto it
    # (read-only). No protobuf type annotations: the compile check lets a rule
    # name only VARIABLES and CEL's built-in type names, and resolving names
    # through the annotations cost more than a small rule.
    if not _base:
        env = _environment()
        _base.append(Activation(package=env.package, annotations=None))
    return _base[0]


def _environment() -> celpy.Environment:
    global _env  # noqa: PLW0603 - built once, lazily: nothing runs at import time
    with _env_lock:
        if _env is None:
            # celpy.Environment() raises the interpreter's recursion limit
            # process-wide; our bounded expressions do not need that.
            limit = sys.getrecursionlimit()
            try:
                _env = celpy.Environment(runner_class=celpy.CompiledRunner)
            finally:
                sys.setrecursionlimit(limit)
        return _env


def _shape(tree: lark.Tree[Any]) -> tuple[int, int, set[str], bool]:
    """Node count, deepest macro nesting, root identifiers of ``tree``, and
    whether a ``string()``/``bytes()`` conversion sits inside a macro."""
    nodes = 0
    deepest = 0
    idents: set[str] = set()
    converts = False
    stack: list[tuple[lark.Tree[Any], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if node.data == "member_dot_arg" and any(
            isinstance(c, lark.Token) and c.value in _MACROS for c in node.children
        ):
            depth += 1
            deepest = max(deepest, depth)
        if node.data == "ident":
            idents.update(str(c) for c in node.children if isinstance(c, lark.Token))
        if depth and node.data == "ident_arg" and node.children:
            converts = converts or str(node.children[0]) in _CONVERSIONS
        stack.extend((c, depth) for c in node.children if isinstance(c, lark.Tree))
    return nodes, deepest, idents, converts


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.match_calls = 0
        self.matched_chars = 0
        self.built = 0

    def add(self, left: Any, right: Any) -> Any:
        # "+" on strings and lists copies its operands; without a cap, a
        # macro could build gigabytes out of a 512 KiB config.
        value = operator.add(left, right)
        if isinstance(value, str | bytes | list):
            self.built += len(value)
            if self.built > MAX_BUILT_ITEMS:
                raise _OutOfBudget
        return value

    def matches(self, text: Any, pattern: Any) -> Any:
        # Each call compiles its pattern and scans the text: the calls are
        # counted like macro steps, and the text scanned is capped.
        self.match_calls += 1
        self.matched_chars += len(text) if isinstance(text, str) else 0
        if self.match_calls > MAX_MACRO_STEPS or self.matched_chars > MAX_MATCHED_CHARS:
            raise _OutOfBudget
        return celpy.evaluation.function_matches(text, pattern)

    def count(self, values: Iterable[Any]) -> Iterator[Any]:
        for value in values:
            self.steps += 1
            if self.steps > MAX_MACRO_STEPS:
                raise _OutOfBudget
            yield value


_SPENT = (
    f"stopped: evaluation budget spent ({MAX_MACRO_STEPS} macro steps, {MAX_MACRO_STEPS} "
    f"matches() calls, {MAX_MATCHED_CHARS} characters matched or {MAX_BUILT_ITEMS} "
    "items built by +)"
)


class _OutOfBudget(Exception):  # noqa: N818 - internal signal, not an error type
    pass


def _guarded(name: str, budget: _Budget) -> Callable[..., Any]:
    real = getattr(celpy.evaluation, name)

    def macro(activation: Any, var: str, expr: Any, gen: Callable[[Any], Any]) -> Any:
        return real(activation, var, expr, lambda a: budget.count(gen(a)))

    return macro


class _Operator(SimpleNamespace):
    """The ``operator`` module as the generated code sees it, with a counted ``add``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(operator, name)


class _Evaluation(SimpleNamespace):
    """``celpy.evaluation`` as the generated code sees it, with counted macros."""

    def __getattr__(self, name: str) -> Any:
        return getattr(celpy.evaluation, name)


@dataclass(frozen=True)
class CelProgram:
    """One compiled rule. ``evaluate`` is thread-safe."""

    expression: str
    #: The variables (of ``VARIABLES``) the expression names.
    uses: frozenset[str]
    _code: Any = field(repr=False, compare=False)

    def evaluate(self, variables: Mapping[str, Any] | CelInput) -> bool:
        """Evaluate over JSON-shaped ``variables`` (see ``VARIABLES``).

        Pass a :class:`CelInput` to convert the values once for several rules.

        Returns:
            The rule's value, which must be a boolean.

        Raises:
            CelError: on an evaluation error (a missing field, a type
                mismatch), a non-boolean result, or a spent step budget.
        """
        budget = _Budget()
        evaluation = _Evaluation(
            **{f"macro_{m}": _guarded(f"macro_{m}", budget) for m in _MACROS},
            function_matches=budget.matches,
        )
        data = variables if isinstance(variables, CelInput) else CelInput(variables)
        activation = _base_activation().nested_activation(vars=data.values(self.uses))
        scope = dict(celpy.evaluation.result.__globals__)
        scope["celpy"] = SimpleNamespace(celtypes=celpy.celtypes, evaluation=evaluation)
        scope["operator"] = _Operator(add=budget.add)
        scope["base_activation"] = activation
        try:
            exec(self._code, scope)  # noqa: S102 - code transpiled from the CEL grammar
            value = scope["CEL"]
        except _OutOfBudget:
            raise CelError(_SPENT) from None
        except RecursionError:
            raise CelError("evaluation nested too deeply") from None
        except Exception as e:  # noqa: BLE001 - any failure of a rule fails it closed
            raise CelError(f"evaluation error: {_describe(e)}") from None
        if isinstance(value, BaseException):
            if isinstance(value.__cause__, _OutOfBudget) or isinstance(value, _OutOfBudget):
                raise CelError(_SPENT)
            raise CelError(f"evaluation error: {_describe(value)}")
        if not isinstance(value, celpy.celtypes.BoolType):
            raise CelError(f"the rule returned {type(value).__name__}, not a boolean")
        return bool(value)


def _describe(e: BaseException) -> str:
    args = getattr(e, "args", ())
    text = str(args[0]) if args else type(e).__name__
    return " ".join(text.split())[:200]


def compile_cel(expression: str) -> CelProgram:
    """Compile and check one rule.

    Raises:
        CelError: on a syntax error, an expression over the size bounds, or an
            identifier other than ``VARIABLES`` at the root.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CelError(f"{len(expression)} characters, limit {MAX_EXPRESSION_CHARS}")
    env = _environment()
    try:
        tree = env.compile(expression)
        nodes, depth, idents, converts = _shape(tree)
        if nodes > MAX_AST_NODES:
            raise CelError(f"{nodes} syntax nodes, limit {MAX_AST_NODES}")
        if depth > MAX_MACRO_DEPTH:
            raise CelError(f"macros nested {depth} deep, limit {MAX_MACRO_DEPTH}")
        if converts:
            raise CelError(
                "string() and bytes() are not allowed inside macros: "
                "at every step they could copy the whole config"
            )
        unknown = sorted(idents - set(VARIABLES) - _TYPE_NAMES - _bound_names(tree))
        if unknown:
            raise CelError(f"unknown variable {unknown[0]!r}; rules may use {', '.join(VARIABLES)}")
        program = env.program(tree)
    except CelError:
        raise
    except RecursionError:
        raise CelError("expression nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - celpy/lark raise many types for bad text
        raise CelError(f"does not compile: {_describe(e)}") from None
    return CelProgram(
        expression=expression,
        uses=frozenset(idents & set(VARIABLES)),
        _code=cast(celpy.CompiledRunner, program).tp.executable_code,
    )


def _bound_names(tree: lark.Tree[Any]) -> set[str]:
    """Variables bound by macros (``l`` in ``x.all(l, ...)``)."""
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and any(
            isinstance(c, lark.Token) and c.value in _MACROS for c in node.children
        ):
            for child in node.children:
                if isinstance(child, lark.Tree) and child.data == "exprlist" and child.children:
                    first = child.children[0]
                    if isinstance(first, lark.Tree):
                        idents = _shape(first)[2]
                        names.update(idents)
    return names
