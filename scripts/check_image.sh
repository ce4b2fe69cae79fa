#!/usr/bin/env bash
# Builds the CPU image (Dockerfile) and checks it: its metadata (non-root user, entrypoint, port,
# volume, health check), that it starts, answers /health and one chat completion on a model from
# models/, and stops on SIGTERM within the drain timeout with exit status 0.
#
#   scripts/check_image.sh                 # a Docker engine if one runs, else buildah (root)
#   BASE_IMAGE=debian:bookworm-slim scripts/check_image.sh
#
# Where no registry is reachable (these build machines), the base image is made locally: a
# debootstrap of Debian 12 imported as localhost/debian:bookworm (needs root, debootstrap and
# buildah or podman, all Debian packages). With buildah, RUN steps and the server run in chroot
# isolation on the host's network, because this kind of VM cannot start OCI containers; the
# image's entrypoint and user are then checked from its metadata, the server is started as the
# image's user with the entrypoint's command, and the model is copied into the container's
# /models rather than mounted (bind mounts do not reach chroot isolation on these VMs).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/dspark:check}
MODEL=${MODEL:-SmolLM2-135M-Instruct.Q4_1.gguf}
PORT=${PORT:-18431}
DRAIN_S=${DRAIN_S:-10}
log() { echo "check_image: $*"; }
fail() { echo "check_image: FAIL: $*" >&2; exit 1; }

[ -f "models/$MODEL" ] || fail "models/$MODEL is missing (scripts/fetch_models.py)"

engine=buildah
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; fi
command -v "$engine" >/dev/null || fail "neither a running Docker engine nor buildah"
log "using $engine"

# ---- base image ----
if [ -z "${BASE_IMAGE:-}" ]; then
  if [ "$engine" = docker ]; then
    BASE_IMAGE=debian:bookworm-slim
  else
    BASE_IMAGE=localhost/debian:bookworm
    if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
      command -v debootstrap >/dev/null || fail "debootstrap is needed for a local base image"
      rootfs=$(mktemp -d)
      log "debootstrap of Debian 12 into $rootfs (a minute)"
      debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
      rm -f "$rootfs/etc/apt/sources.list"
      cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null ||
        echo "deb http://deb.debian.org/debian bookworm main" >"$rootfs/etc/apt/sources.list"
      tar -C "$rootfs" -c . | buildah import - "$BASE_IMAGE" >/dev/null 2>&1 ||
        tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
      rm -rf "$rootfs"
    fi
  fi
fi
log "base image $BASE_IMAGE"

# ---- build ----
start=$(date +%s)
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: checking the existing $IMAGE"
elif [ "$engine" = docker ]; then
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" . >/dev/null
  log "built $IMAGE in $(( $(date +%s) - start )) s"
else
  # Docker's image format: OCI's has no HEALTHCHECK.
  buildah bud --isolation chroot --format docker -q --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -t "$IMAGE" . >/dev/null
  log "built $IMAGE in $(( $(date +%s) - start )) s"
fi

# ---- metadata ----
if [ "$engine" = docker ]; then
  config=$(docker image inspect --format '{{json .Config}}' "$IMAGE")
  size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
else
  config=$(buildah inspect --type image "$IMAGE" |
           python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['Docker']['config']))")
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)
fi
python3 - "$config" <<'EOF' || fail "image metadata"
import json, sys
c = json.loads(sys.argv[1])
problems = []
if c.get("User") in (None, "", "root", "0"): problems.append(f"runs as {c.get('User')!r}")
if c.get("Entrypoint") != ["dspark", "serve"]: problems.append(f"entrypoint {c.get('Entrypoint')}")
if "8000/tcp" not in (c.get("ExposedPorts") or {}): problems.append("port 8000 not exposed")
if "/models" not in (c.get("Volumes") or {}): problems.append("no /models volume")
hc = (c.get("Healthcheck") or {}).get("Test") or []
if not any("/health" in part for part in hc): problems.append(f"health check {hc}")
env = dict(e.split("=", 1) for e in c.get("Env") or [])
for k in ("DSPARK_HOST", "DSPARK_PORT", "DSPARK_MODEL"):
    if k not in env: problems.append(f"{k} not set")
if problems:
    print("; ".join(problems)); sys.exit(1)
print("check_image: metadata ok: user %s, entrypoint %s, health check on /health" %
      (c["User"], c["Entrypoint"]))
EOF
[ "$size" != 0 ] && log "image size $(( size / 1000000 )) MB"

# ---- run ----
out=$(mktemp)
models=$(realpath models)
if [ "$engine" = docker ]; then
  cid=$(docker run -d -p "127.0.0.1:$PORT:8000" -v "$models:/models:ro" \
        -e "DSPARK_MODEL=/models/$MODEL" -e "DSPARK_SHUTDOWN_TIMEOUT=$DRAIN_S" "$IMAGE")
  cleanup() { docker rm -f "$cid" >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  stop_server() {  # sets status
    local t0
    t0=$(date +%s)
    docker stop -t $((DRAIN_S + 5)) "$cid" >/dev/null
    status=$(docker wait "$cid")
    docker logs "$cid" >"$out" 2>&1
    elapsed=$(( $(date +%s) - t0 ))
  }
else
  ctr=$(buildah from -q "$IMAGE")
  cleanup() { buildah rm "$ctr" >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  # Bind mounts do not reach a chroot-isolated process here: the model is copied into the
  # working container's /models (the volume's place) instead.
  buildah copy -q --chown 10001:10001 "$ctr" "models/$MODEL" "/models/$MODEL" >/dev/null
  buildah run --isolation chroot --user dspark \
    --env "DSPARK_MODEL=/models/$MODEL" --env "DSPARK_PORT=$PORT" --env "DSPARK_HOST=127.0.0.1" \
    --env "DSPARK_SHUTDOWN_TIMEOUT=$DRAIN_S" "$ctr" -- dspark serve >"$out" 2>&1 &
  runner=$!
  stop_server() {  # sets status
    local pid t0
    pid=$(pgrep -n -fx "(/usr/local/bin/)?dspark serve") || true
    [ -n "$pid" ] || fail "the server process is gone before SIGTERM"
    t0=$(date +%s)
    kill -TERM "$pid"
    status=0
    wait "$runner" || status=$?
    elapsed=$(( $(date +%s) - t0 ))
  }
fi

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
  code=$(python3 -c "import urllib.request,sys
try: print(urllib.request.urlopen('$base/health', timeout=2).status)
except Exception as e: print(getattr(e, 'code', 0))" 2>/dev/null)
  [ "$code" = 200 ] && break
  sleep 1
done
[ "$code" = 200 ] || { cat "$out"; fail "/health did not answer 200 within 120 s (last: $code)"; }
log "/health 200"
python3 - "$base" <<'EOF' || { cat "$out"; fail "chat completion"; }
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", method="POST",
    headers={"Content-Type": "application/json"},
    data=json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8,
                     "temperature": 0}).encode())
body = json.load(urllib.request.urlopen(req, timeout=60))
text = body["choices"][0]["message"]["content"]
assert body["object"] == "chat.completion" and text, body
print("check_image: chat completion:", repr(text))
EOF
stop_server
log "stopped ${elapsed} s after SIGTERM, exit status $status"
[ "$status" = 0 ] || { cat "$out"; fail "exit status $status after SIGTERM"; }
[ "$elapsed" -le $((DRAIN_S + 5)) ] || fail "stopping took $elapsed s (drain timeout $DRAIN_S s)"
grep -q "received SIGTERM" "$out" || { cat "$out"; fail "no SIGTERM in the server log"; }
log "PASS"
