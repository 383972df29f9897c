# SPDX-License-Identifier: Apache-2.0
"""List the import cycles among attestor's modules, and package pairs that import each other.

Imports under ``if TYPE_CHECKING:`` are ignored: they never run. A cycle here is
a strongly connected component of the module-level import graph that grimp (the
library import-linter uses) builds. Two packages that import each other are
reported too: importing a submodule first runs its package's ``__init__``, so
such a pair can fail at load time in one import order even without a module
cycle. Exits 1 when there is either.

Usage: ``python scripts/import_cycles.py [package ...]`` (default ``attestor``).
"""

from __future__ import annotations

import sys

import grimp


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    # Tarjan's algorithm, iterative so that deep graphs do not hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def main(packages: list[str]) -> int:
    """Print the cycles of ``packages``; returns 1 if there is a module or package cycle."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    mods = sorted(m for m in graph.modules if m.split(".")[0] in packages)
    edges = {
        m: sorted(x for x in graph.find_modules_directly_imported_by(m) if x in set(mods))
        for m in mods
    }
    groups = _cycles(edges)
    for group in groups:
        members = set(group)
        print(f"cycle of {len(group)} modules:")
        for m in group:
            print(f"  {m} -> {', '.join(x for x in edges[m] if x in members)}")
    print(f"{len(groups)} module cycle(s)")

    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    between: dict[str, set[str]] = {}
    for m, targets in edges.items():
        for x in targets:
            if package(m) != package(x):
                between.setdefault(package(m), set()).add(package(x))
    pairs = 0
    for a, targets in sorted(between.items()):
        for b in sorted(targets):
            if a < b and a in between.get(b, set()):
                print(f"packages importing each other: {a} <-> {b}")
                pairs += 1
    return 1 if groups or pairs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["attestor"]))
