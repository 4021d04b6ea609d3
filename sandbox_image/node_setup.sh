#!/usr/bin/env bash
# Idempotent Node.js set-up for the Node client and its live tests (examples/clients/node,
# tests/test_node_client.py): Debian's nodejs and npm installed when node or npm is missing or node is
# older than 18 (Debian 12 has 18.20; @grpc/grpc-js and `node --test` need 18+), then `npm ci` in the
# package when its package-lock.json (or node's version) changed since the last install, recorded in a
# stamp inside node_modules. Needs root only to install the Debian packages; silent when all is done.
set -euo pipefail

log() { printf '[node-setup] %s\n' "$*"; }
PACKAGE=${NODE_PACKAGE:-examples/clients/node}
NODE_MIN=18
LOG=${NODE_SETUP_LOG:-.build/npm.log}
STAMP=$PACKAGE/node_modules/.rlm-setup-stamp

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
usable() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [ "$(node_major)" -ge "$NODE_MIN" ]; }

if ! usable; then
  if [ "$(id -u)" -ne 0 ]; then
    log "error: Node.js $NODE_MIN+ and npm are needed and only root can install them; run 'sudo make setup' once" >&2
    exit 1
  fi
  wanted=(npm)
  if ! command -v node >/dev/null 2>&1 || [ "$(node_major)" -lt "$NODE_MIN" ]; then wanted=(nodejs npm); fi
  log "installing Debian's ${wanted[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${wanted[@]}" >/dev/null
  hash -r
  usable || { log "error: after installing, node is $(node --version 2>/dev/null || echo missing) and npm" \
    "$(npm --version 2>/dev/null || echo missing): Node.js $NODE_MIN+ with npm is needed" >&2; exit 1; }
fi

want="$(sha256sum "$PACKAGE/package-lock.json" | cut -d' ' -f1) node $(node --version)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
log "npm ci in $PACKAGE (node $(node --version), npm $(npm --version))"
mkdir -p "$(dirname "$LOG")"
# No install scripts: the two dependencies and theirs are plain JavaScript (protobufjs's postinstall only
# checks its command-line tool's optional packages).
(cd "$PACKAGE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$LOG" 2>&1 \
  || { cat "$LOG"; log "error: npm ci failed (log above)" >&2; exit 1; }
printf '%s\n' "$want" >"$STAMP"
