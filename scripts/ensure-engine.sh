#!/usr/bin/env bash
# Make sure a Docker engine answers. Uses the one that is there; on a fresh Debian
# machine where we are root, installs Debian's docker.io and starts dockerd in the
# background (there is no init system to do it for us).
set -euo pipefail

log() { printf 'ensure-engine: %s\n' "$*" >&2; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

if engine_answers; then
  exit 0
fi

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "no Docker engine answers, and this is not a Debian machine where we are root."
  log "Start Docker (Docker Desktop, or 'sudo systemctl start docker') and try again."
  exit 3
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true   # a failed refresh still leaves the old lists usable
  # --no-install-recommends would skip containerd's runc/tini friends we need, so keep recommends.
  apt-get install -y -qq docker.io >/dev/null
fi

state_dir=${TCPSCEN_STATE_DIR:-/var/lib/tcpscen}
mkdir -p "$state_dir"
log "starting dockerd in the background (log: $state_dir/dockerd.log)"
# setsid: the engine must outlive the make/CI shell that started it.
setsid dockerd >"$state_dir/dockerd.log" 2>&1 < /dev/null &
echo $! >"$state_dir/dockerd.pid"

for _ in $(seq 1 60); do
  if engine_answers; then
    log "engine is up: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; see $state_dir/dockerd.log"
exit 3
