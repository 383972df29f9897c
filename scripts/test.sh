#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's test command (`scripts/test.sh`, or `make test`): install what
# is missing (scripts/bootstrap.sh), then ruff, ruff format, mypy,
# import-linter and the whole pytest suite. A lint failure does not stop
# pytest, so one run reports both; the exit code is non-zero if either failed.
# Arguments go to pytest.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
BIN="$VENV/bin"

bash scripts/bootstrap.sh || exit 1
# bootstrap may have put a newer Node there (the interop checks need >= 20.17).
if [[ -x .tools/node/node_modules/.bin/node ]]; then
  export PATH="$PWD/.tools/node/node_modules/.bin:$PATH"
fi

rc=0
"$BIN/ruff" check . || rc=1
"$BIN/ruff" format --check . || rc=1
"$BIN/mypy" attestor agent || rc=1
"$BIN/lint-imports" || rc=1
bash scripts/pytest.sh "$@" || rc=1
exit "$rc"
