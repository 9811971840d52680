#!/usr/bin/env bash
# Installs everything rtccdn needs on a fresh Debian 12 machine, idempotently and fast when
# nothing changed (it runs before every `npm start` and `npm test`).
#
#   scripts/setup.sh            everything (runtime + tests + benchmarks)
#   scripts/setup.sh --runtime  what `npm start` needs: npm packages + the mediasoup worker
#   scripts/setup.sh --test     runtime + test tools (Chromium for the browser end-to-end test,
#                               redis-server and redis-sentinel for the registry and HA tests)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:---all}"
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

case "$MODE" in
  --runtime | --test | --all) ;;
  *) die "unknown option $MODE (use --runtime, --test or nothing)" ;;
esac

# --- Node.js 24 --------------------------------------------------------------------------------
# The Node.js on PATH (>= 20) only bootstraps npm. rtccdn runs on Node.js 24: the machine's own
# if it is that recent, otherwise the pinned build scripts/setup-node.sh fetches and caches.
# Decide on the machine's PATH, not on an npm script's (its node_modules/.bin/node is ours).
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/\.bin/*$' | paste -sd: -)"
command -v node >/dev/null || die "Node.js >= 20 with npm is required to bootstrap (node not found on PATH)"
command -v npm >/dev/null || die "npm is required to bootstrap (not found on PATH)"
PATH_NODE="$(command -v node)"
NODE_BIN_DIR="$(bash scripts/setup-node.sh)" || die "Node.js 24 setup failed (scripts/setup-node.sh)"
# npm ci, the worker build and its functional check below run on it too.
export PATH="$NODE_BIN_DIR:$PATH"

# --- Debian packages -------------------------------------------------------------------------
APT_PACKAGES=()
if [ "$MODE" != "--runtime" ]; then
  # Chromium drives the demo page end-to-end test; fonts make its screenshots legible.
  APT_PACKAGES+=(chromium fonts-dejavu-core)
  # The cluster registry tests start their own redis-server (temp dir, free loopback port), and
  # the high-availability tests their own redis-sentinel processes.
  APT_PACKAGES+=(redis-server redis-sentinel)
  # Transcoder nodes spawn FFmpeg (renditions); their tests use the real one.
  APT_PACKAGES+=(ffmpeg)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing Debian packages ${missing[*]} and no apt-get to install them"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start a system Redis on port 6379 and a Sentinel on 26379 (where services may
  # start at all); the tests run their own, so one installed just now is stopped again. An
  # existing one is left alone.
  for service in redis-server redis-sentinel; do
    [[ " ${missing[*]} " == *" $service "* ]] || continue
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || log "warning: could not stop the $service service"
    elif command -v service >/dev/null && service "$service" status >/dev/null 2>&1; then
      $SUDO service "$service" stop >/dev/null 2>&1 || log "warning: could not stop the $service service"
    fi
  done
fi

# --- npm packages ----------------------------------------------------------------------------
# Re-install only when the lockfile changed since the last install (stamp inside node_modules).
LOCK_HASH="$(sha256sum package-lock.json | cut -c1-16)"
STAMP="node_modules/.rtccdn-lock-$LOCK_HASH"
if [ ! -f "$STAMP" ]; then
  log "installing npm packages (npm ci)"
  # mediasoup's own postinstall would try to download a prebuilt worker from GitHub: npm 11
  # skips it (package.json allowScripts), and on npm 10 this variable makes it a no-op.
  MEDIASOUP_WORKER_BIN="${MEDIASOUP_WORKER_BIN:-/nonexistent/mediasoup-worker}" npm ci --no-audit --no-fund --loglevel=error
  rm -f node_modules/.rtccdn-lock-*
  touch "$STAMP"
fi
# npm puts node_modules/.bin first on PATH for every script: `node` there is what `npm start`,
# `npm test`, `npm run bench` (and the processes they start with process.execPath) run on.
if [ "$NODE_BIN_DIR/node" -ef "$PATH_NODE" ]; then
  [ ! -L node_modules/.bin/node ] || rm -f node_modules/.bin/node
else
  mkdir -p node_modules/.bin
  ln -sfn "$NODE_BIN_DIR/node" node_modules/.bin/node
fi

# --- mediasoup worker (built offline against Debian libraries, cached) -----------------------
bash scripts/build-mediasoup-worker.sh

# --- Kubernetes test environment (kube-apiserver + etcd built from Go modules, kubectl, helm) --
# Built here, before the tests, so that no test's beforeAll has to wait minutes for it.
if [ "$MODE" != "--runtime" ]; then
  bash scripts/setup-kube-testenv.sh >/dev/null
fi
