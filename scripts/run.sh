#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's run command (`scripts/run.sh`, or `make run`): create .venv if
# missing, install the project, serve on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh Debian has python3 but not its venv module (python3-venv).
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "run: installing python3-venv (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n apt-get update -q && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
  else
    echo "run: error: python3-venv is missing; as root: apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
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
