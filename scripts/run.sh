#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make run`: create .venv if missing, install the project, serve on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/attestor ]; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi

# Embedded defaults: SQLite + key under ./var, jobs in-process (no REDIS_URL).
export ATTESTOR_DATA_DIR="${ATTESTOR_DATA_DIR:-$PWD/var}"
export ATTESTOR_POLICY_DIR="${ATTESTOR_POLICY_DIR:-$PWD/policies}"
exec .venv/bin/attestor serve --host "${ATTESTOR_HOST:-127.0.0.1}" --port "${ATTESTOR_PORT:-8080}"
