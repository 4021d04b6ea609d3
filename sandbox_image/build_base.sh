#!/usr/bin/env bash
# Builds the offline base image (Debian bookworm minbase + python3) with debootstrap and `docker import`,
# for machines where no image registry is reachable. Skipped when the image already exists.
# The Debian mirror is read from this machine's apt configuration: nothing is hard-coded.
set -euo pipefail

BASE_TAG=${RLM_OFFLINE_BASE:-rlm-sandbox-base:bookworm}
SUITE=bookworm
log() { printf '[build-base] %s\n' "$*"; }

if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  log "$BASE_TAG exists; skipping"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { log "error: debootstrap is missing (run make setup)" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { log "error: no Debian mirror in the apt configuration; set DEBIAN_MIRROR" >&2; exit 1; }

root=$(mktemp -d /var/tmp/rlm-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
log "debootstrap --variant=minbase $SUITE (python3) into $root"
debootstrap --variant=minbase --include=python3 "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
  log "error: debootstrap failed; last lines:" >&2; tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Nothing in the sandbox needs apt, docs or caches: a smaller image is a smaller attack surface.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
log "docker import -> $BASE_TAG"
tar -C "$root" -c . | docker import - "$BASE_TAG" >/dev/null
log "done: $(docker image inspect "$BASE_TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
