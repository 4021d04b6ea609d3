#!/usr/bin/env bash
# Builds the sandbox image (default tag rlm-sandbox:latest). Skipped when its inputs are unchanged: the
# image carries a label with a hash of the Dockerfile, the runtime's sources, the requirements and the
# base image's ID.
#   BASE_IMAGE=python:3.11-slim sandbox_image/build.sh   # where a registry is reachable
#   sandbox_image/build.sh                               # offline: debootstrap base (build_base.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
IMAGE=${RLM_SANDBOX_IMAGE:-rlm-sandbox:latest}
PIP=${PIP:-$repo/.venv/bin/pip}
[ -x "$PIP" ] || PIP="python3 -m pip"
log() { printf '[build-image] %s\n' "$*"; }

if [ -z "${BASE_IMAGE:-}" ]; then
  bash "$here/build_base.sh"
  BASE_IMAGE=${RLM_OFFLINE_BASE:-rlm-sandbox-base:bookworm}
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "pulling $BASE_IMAGE"
  docker pull --quiet "$BASE_IMAGE" >/dev/null || {
    log "error: base image $BASE_IMAGE is not here and cannot be pulled; unset BASE_IMAGE to build one offline" >&2
    exit 1; }
fi
base_id=$(docker image inspect "$BASE_IMAGE" --format '{{.Id}}')

# Names and contents (relative paths, so every checkout of the same sources gets the same hash).
inputs=$( { echo "$base_id";
            cd "$repo" && find Dockerfile.sandbox sandbox_image/requirements.txt sandbox_image/build.sh \
                sandbox_image/rlm_sandbox proto/rlm_proto -type f \( -name '*.py' -o -name '*.txt' \
                -o -name '*.sh' -o -name 'Dockerfile.sandbox' \) -print0 | sort -z | xargs -0 sha256sum; } \
          | sha256sum | cut -c1-32)
current=$(docker image inspect "$IMAGE" --format '{{index .Config.Labels "rlm.inputs"}}' 2>/dev/null || true)
if [ "$current" = "$inputs" ]; then
  log "$IMAGE is up to date ($inputs)"
  exit 0
fi

stage="$repo/.build/image"
rm -rf "$stage" && mkdir -p "$stage/lib" "$repo/.build"
pyver=$(docker run --rm --network none "$BASE_IMAGE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
arch=$(uname -m)
log "installing wheels for CPython $pyver on $arch into the build context"
# shellcheck disable=SC2086
$PIP install --quiet --disable-pip-version-check --no-compile --target "$stage/lib" \
  --only-binary=:all: --implementation cp --python-version "$pyver" \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  -r "$here/requirements.txt" >"$repo/.build/pip-image.log" 2>&1 \
  || { cat "$repo/.build/pip-image.log" >&2; log "error: could not install the image's wheels" >&2; exit 1; }
cp -r "$here/rlm_sandbox" "$repo/proto/rlm_proto" "$stage/lib/"
find "$stage/lib" -name '__pycache__' -prune -exec rm -rf {} +
cp "$repo/Dockerfile.sandbox" "$stage/Dockerfile"
log "docker build $IMAGE from $BASE_IMAGE"
docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "rlm.inputs=$inputs" -t "$IMAGE" "$stage" \
  >"$repo/.build/docker-build.log" 2>&1 \
  || { cat "$repo/.build/docker-build.log" >&2; log "error: docker build failed" >&2; exit 1; }
log "built $IMAGE ($(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
