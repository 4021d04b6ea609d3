#!/usr/bin/env bash
# Builds our seccomp profile (orchestrator/security/seccomp.py) from the upstream default that Debian
# ships for the engine, into /etc/rlm/seccomp.json (root) or $RLM_SECCOMP_PROFILE. Skipped when present
# and built from the same inputs. Needs the project's venv (make venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PY=${PY:-$repo/.venv/bin/python}
OUT=${RLM_SECCOMP_PROFILE:-/etc/rlm/seccomp.json}
PKG=golang-github-docker-docker-dev
log() { printf '[seccomp] %s\n' "$*"; }

stamp=$(cat "$repo/orchestrator/security/seccomp.py" | sha256sum | cut -c1-32)
if [ -f "$OUT" ] && [ "$(cat "$OUT.inputs" 2>/dev/null)" = "$stamp" ] \
   && "$PY" -W ignore::RuntimeWarning -m orchestrator.security.seccomp --verify "$OUT" >/dev/null; then
  log "$OUT is up to date"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$PKG" >/dev/null 2>&1) || {
  apt-get update -q >/dev/null && (cd "$work" && apt-get download -q "$PKG" >/dev/null); }
dpkg-deb -x "$work"/"$PKG"_*.deb "$work/x"
upstream="$work/x/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
mkdir -p "$(dirname "$OUT")"
"$PY" -W ignore::RuntimeWarning -m orchestrator.security.seccomp "$upstream" "$OUT"
echo "$stamp" > "$OUT.inputs"
log "built $OUT (upstream default + io_uring, AF_ALG and AF_VSOCK blocked)"
