# SPDX-License-Identifier: Apache-2.0
"""What each import of ``attestor-agent`` costs in resident memory.

Every figure comes from a fresh interpreter (``sys.executable``), reading
``VmRSS`` in ``/proc/self/status`` before and after the imports:

1. The modules ``import agent.cli`` loads, in the order it loads them, are
   grouped by top-level package (the standard library is one group, our own
   ``attestor`` and ``agent`` packages are split into their subpackages).
2. "in order": one child imports the groups one after the other, third-party
   packages first, in first-load order; each delta is what that group adds on
   top of the previous ones, so the column sums to the total. A shared
   dependency (``ssl``, ``email``, ...) is counted once, at the first group
   that needs it.
3. "alone": one child per group imports only that group; a group's own
   dependencies are included, so this column does not sum.
4. Modules the agent loads only when a feature needs them (keyless
   verification's ``sigstore``) are listed with what they add on top of
   ``import agent.cli``; tests/unit/agent/test_lazy_imports.py pins that
   ``import agent.cli`` does not load them.

The bare interpreter is the baseline of both columns; the total is the RSS
after ``import agent.cli`` (the figure the agent starts from before any sweep).

Usage: .venv/bin/python bench/bench_agent_imports.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _host import print_host  # bench/_host.py, beside this file

ROOT = Path(__file__).resolve().parent.parent

#: Loaded on demand only (the test pins that ``import agent.cli`` does not load them).
LAZY = {"keyless verification (sigstore)": ["attestor.verify.bundle"]}

# A child: print VmRSS (KiB) after each group of imports, as one JSON list.
_CHILD = r"""
import importlib, json, sys
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
out = [rss()]
for group in json.loads(sys.argv[1]):
    for name in group:
        importlib.import_module(name)
    out.append(rss())
print(json.dumps(out))
"""

# A child: the modules ``import agent.cli`` loads, in load order.
# Entries without a spec (``cython_runtime``) are not importable by name.
_LIST = (
    "import json, sys; import agent.cli; "
    "print(json.dumps([n for n, m in sys.modules.items() if getattr(m, '__spec__', None)]))"
)


def _child(code: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def _group_of(name: str) -> str:
    top = name.split(".")[0]
    if top in ("agent", "attestor"):
        parts = name.split(".")
        return ".".join(parts[:2])
    if top in sys.stdlib_module_names or top.startswith("_") or top == "__main__":
        return "(standard library)"
    return top


def groups() -> dict[str, list[str]]:
    """Group name -> modules, ordered: third-party, standard library, attestor, agent."""
    loaded: list[str] = json.loads(_child(_LIST))
    by_group: dict[str, list[str]] = {}
    for name in loaded:
        if name == "__main__" or name in sys.builtin_module_names:
            continue
        by_group.setdefault(_group_of(name), []).append(name)

    def rank(item: tuple[str, list[str]]) -> int:
        name = item[0]
        if name.startswith("agent"):
            return 3
        if name.startswith("attestor"):
            return 2
        return 1 if name == "(standard library)" else 0

    # sorted() is stable: first-load order inside each rank.
    return dict(sorted(by_group.items(), key=rank))


def measure(seq: list[list[str]]) -> list[float]:
    """RSS deltas in MB, one per group, each on top of the previous groups."""
    kib = json.loads(_child(_CHILD, json.dumps(seq)))
    return [(b - a) / 1024 for a, b in itertools.pairwise(kib)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="children per figure (median)")
    args = parser.parse_args()
    print_host()
    table = groups()
    names = list(table)
    in_order = [measure(list(table.values())) for _ in range(args.repeat)]
    alone = {n: [measure([table[n]])[0] for _ in range(args.repeat)] for n in names}
    everything = list(table.values())
    lazy = {
        n: [measure([*everything, mods])[-1] for _ in range(args.repeat)]
        for n, mods in LAZY.items()
    }
    bare = [json.loads(_child(_CHILD, "[]"))[0] / 1024 for _ in range(args.repeat)]
    print(
        f"RSS of `import agent.cli`, by group (MB, median of {args.repeat} fresh children; "
        f"bare interpreter {statistics.median(bare):.1f} MB):"
    )
    print(f"  {'group':<30} {'modules':>7} {'in order':>9} {'alone':>7}")
    for i, name in enumerate(names):
        order = statistics.median(run[i] for run in in_order)
        print(
            f"  {name:<30} {len(table[name]):>7} {order:>9.1f} "
            f"{statistics.median(alone[name]):>7.1f}"
        )
    totals = [sum(run) for run in in_order]
    total = statistics.median(totals)
    print(
        f"  {'total imports':<30} {sum(map(len, table.values())):>7} {total:>9.1f}"
        f"   (range {min(totals):.1f}-{max(totals):.1f})"
    )
    print(
        f"  {'RSS after import agent.cli':<30} {'':>7} "
        f"{total + statistics.median(bare):>9.1f}   (target: peak < 60 MB)"
    )
    print("loaded only when needed (not by import agent.cli), MB on top of it:")
    for name, runs in lazy.items():
        print(f"  {name:<38} {statistics.median(runs):>9.1f}")


if __name__ == "__main__":
    main()
