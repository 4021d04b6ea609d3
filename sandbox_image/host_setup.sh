#!/usr/bin/env bash
# Idempotent host set-up for the sandbox engine: Debian's docker.io and runsc, runsc registered with
# dockerd (no network, host Unix sockets openable but never creatable), dockerd started and waited for.
# Needs root (as on these machines and in CI). Prints what it did; does nothing that is already done.
set -euo pipefail

log() { printf '[host-setup] %s\n' "$*"; }
DAEMON_JSON=/etc/docker/daemon.json
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/rlm-dockerd.log}

if [ "$(id -u)" -ne 0 ]; then
  docker info >/dev/null 2>&1 || { log "error: not root and no Docker engine answers; run 'sudo make setup' once" >&2; exit 1; }
  docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' \
    || { log "error: dockerd has no runsc runtime; run 'sudo make setup' once" >&2; exit 1; }
  docker image inspect "${RLM_OFFLINE_BASE:-rlm-sandbox-base:bookworm}" >/dev/null 2>&1 || [ -n "${BASE_IMAGE:-}" ] \
    || command -v debootstrap >/dev/null 2>&1 \
    || { log "error: no base image and no debootstrap; run 'sudo make setup' once or set BASE_IMAGE" >&2; exit 1; }
  log "not root, but a Docker engine with runsc answers: using it as it is"
  exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Register runsc, leaving any other runtime the operator registered alone. --host-uds=open lets the
# sandbox connect to the host socket we mount; it must never be 'create' or 'all' (a sandbox could then
# create sockets on the host). runsc does not apply the OCI seccomp profile to the sandboxed program
# (gVisor's Sentry is the boundary there, behind its own host filter); --oci-seccomp would, but this
# runsc then answers clone3 with EPERM instead of the profile's ENOSYS and glibc cannot start threads
# (measured: the runtime died with "pthread_create failed: Operation not permitted").
mkdir -p /etc/docker
reload=0
if ! python3 - "$DAEMON_JSON" "$(command -v runsc)" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
want = {"path": runsc, "runtimeArgs": ["--network=none", "--host-uds=open"]}
config = json.load(open(path)) if os.path.exists(path) else {}
if config.get("runtimes", {}).get("runsc") == want:
    sys.exit(0)
config.setdefault("runtimes", {})["runsc"] = want
tmp = path + ".tmp"
with open(tmp, "w") as fh:
    json.dump(config, fh, indent=2)
os.replace(tmp, path)
sys.exit(1)
PY
then
  log "registered runsc in $DAEMON_JSON"
  reload=1
fi

if docker info >/dev/null 2>&1; then
  if [ "$reload" -eq 1 ]; then
    log "reloading dockerd (SIGHUP)"
    pkill -HUP -x dockerd || log "warning: no local dockerd to reload; restart your engine to pick up runsc"
  fi
else
  if ! pgrep -x dockerd >/dev/null; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: dockerd must outlive the make that started it.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
fi

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then break; fi
  sleep 0.5
done
if ! docker info >/dev/null 2>&1; then
  log "error: dockerd did not answer within 60 s; last lines of $DOCKERD_LOG:" >&2
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  exit 1
fi
for _ in $(seq 1 40); do
  if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q runsc; then break; fi
  sleep 0.25
done
docker info --format '{{json .Runtimes}}' | grep -q runsc || { log "error: dockerd does not list runsc" >&2; exit 1; }
log "docker $(docker version --format '{{.Server.Version}}') is up; runtimes: $(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')"
