#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Run pytest from the venv. "No tests collected" (exit code 5) is a failure:
# a suite that silently collects nothing must never pass CI.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"

"$VENV/bin/pytest" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "pytest: no tests were collected (exit code 5); treating that as a failure" >&2
  exit 1
fi
exit "$rc"
