# SPDX-License-Identifier: Apache-2.0
"""Move protoc's output under agent/containerd/_proto and fix its imports.

protoc names Python modules after the .proto paths, so containerd's
``github.com/containerd/containerd/api/...`` becomes a top-level package
``github.com...`` and gogo's ``gogoproto/gogo.proto`` a top-level ``gogoproto``.
Neither may be installed as a top-level package, so this moves both under
``agent/containerd/_proto`` and rewrites the imports to absolute ones. Files are
processed in sorted order and written with a fixed header, so a rerun gives
byte-identical output. Called by ``scripts/gen-containerd-stubs.sh``.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

PACKAGE = "agent.containerd._proto"
# (source prefix in protoc's output tree, destination prefix under _proto)
_MOVES = (
    ("github/com/containerd/containerd/", ""),
    ("gogoproto/", "gogoproto/"),
)
_IMPORTS = (
    (re.compile(r"^(from|import) github\.com\.containerd\.containerd\.", re.M), rf"\1 {PACKAGE}."),
    (re.compile(r"^from gogoproto import ", re.M), f"from {PACKAGE}.gogoproto import "),
)
# The message classes are referenced by their full proto name in the
# descriptors, which do not change; only Python module paths move.


def _destination(rel: str) -> str:
    for src, dst in _MOVES:
        if rel.startswith(src):
            return dst + rel[len(src) :]
    raise SystemExit(f"unexpected protoc output file: {rel}")


def _is_empty_grpc_module(text: str) -> bool:
    # protoc writes a *_pb2_grpc.py for every .proto, with only a version check
    # when the file defines no service; those are dead code.
    return "def add_" not in text and "Stub(object)" not in text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gen", type=Path, help="protoc output directory")
    parser.add_argument("out", type=Path, help="agent/containerd/_proto")
    parser.add_argument("--header", required=True)
    args = parser.parse_args()

    header = f"# SPDX-License-Identifier: Apache-2.0\n# {args.header}\n"
    packages: set[Path] = {args.out}
    for path in sorted(p for p in args.gen.rglob("*") if p.is_file()):
        rel = path.relative_to(args.gen).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel.endswith("_pb2_grpc.py") and _is_empty_grpc_module(text):
            continue
        for pattern, replacement in _IMPORTS:
            text = pattern.sub(replacement, text)
        dest = args.out / _destination(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(header + text, encoding="utf-8")
        parent = dest.parent
        while parent != args.out and parent not in packages:
            packages.add(parent)
            parent = parent.parent
    for package in sorted(packages):
        init = package / "__init__.py"
        name = ".".join([PACKAGE, *package.relative_to(args.out).parts])
        init.write_text(f'{header}"""Generated protobuf modules: {name}."""\n', encoding="utf-8")
    # No caches in the committed tree.
    for cache in args.out.rglob("__pycache__"):
        shutil.rmtree(cache)


if __name__ == "__main__":
    main()
