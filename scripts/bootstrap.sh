#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Install what the test suite needs and is missing, then stop. Idempotent:
# a second run changes nothing and takes about a second.
#   - Debian packages for the harness services and image tools (apt-get)
#   - .venv with the project and its test extras (re-run when pyproject.toml changes)
#   - Node 20 from the npm registry into .tools/node when the system's is too old
#   - npm packages for tests/interop (when its package-lock.json is newer)
# Needs root (or password-less sudo) only when a Debian package is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian puts daemons under sbin and PostgreSQL under its versioned bin dir.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
SEARCH_PATH="$PATH:/usr/sbin:/sbin${PG_BIN:+:$PG_BIN}"
have() { PATH="$SEARCH_PATH" command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# package -> a binary that proves it is usable (busybox-static: the package
# itself, since a dynamic busybox cannot run inside a bare image).
missing=()
need() { # need PACKAGE [BINARY]
  if [[ $# -eq 2 ]] && have "$2"; then return; fi
  if command -v dpkg-query >/dev/null && installed "$1"; then return; fi
  missing+=("$1")
}
need redis-server redis-server
need postgresql initdb
need containerd containerd
need runc runc
need docker-registry docker-registry
need skopeo skopeo
need umoci umoci
need busybox-static
need openssl openssl
need make make
need wrk wrk  # bench/bench_feed.py's closed-loop ceiling
if ! have node || ! have npm; then need nodejs node; need npm npm; fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=("python3-venv")
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else
    die "missing Debian packages: ${missing[*]}. Run as root: apt-get install -y ${missing[*]}"
  fi
}

if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is $("$PYTHON" --version 2>&1); attestor needs Python >= 3.11"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last successful install.
stamp="$VENV/.attestor-pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  log "installing the project and its test extras into $VENV"
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  printf '%s\n' "$want" >"$stamp"
fi

# The interop checks (@sigstore/verify, @sigstore/mock) need Node >= 20.17 or
# >= 22.9; Debian 12 ships 18. Then a Node 20 comes from the npm registry (the
# "node" package carries the binary) into .tools/node; tests/conftest.py puts
# it first on PATH.
node_tools=.tools/node
node_ok() {
  local v
  v="$("${1:-node}" --version 2>/dev/null)" || return 1
  v="${v#v}"
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  (( major > 22 || (major == 22 && minor >= 9) || (major == 20 && minor >= 17) ))
}
if ! node_ok node && ! node_ok "$node_tools/node_modules/.bin/node"; then
  log "node $(node --version 2>/dev/null || echo missing) is too old for the interop checks; installing Node 20 from the npm registry into $node_tools"
  npm install --prefix "$node_tools" --no-audit --no-fund --no-save node@20 >/dev/null
  node_ok "$node_tools/node_modules/.bin/node" || die "Node 20 from the npm registry did not install into $node_tools"
fi
if [[ -x "$node_tools/node_modules/.bin/node" ]]; then
  export PATH="$PWD/$node_tools/node_modules/.bin:$PATH"
fi

interop=tests/interop
if [[ -f "$interop/package-lock.json" ]]; then
  if [[ ! -d "$interop/node_modules" || "$interop/package-lock.json" -nt "$interop/node_modules" ]]; then
    log "npm ci in $interop"
    (cd "$interop" && npm ci --no-audit --no-fund)
    touch "$interop/node_modules"
  fi
fi

log "ok"
