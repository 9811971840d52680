#!/usr/bin/env bash
# Makes a Docker engine available on this machine (Debian 12), for building and running rtccdn's
# images locally and in CI. Nothing starts a daemon for us here (no systemd), so this does it.
#
#   scripts/docker.sh ensure   install Debian's docker.io if missing, start dockerd if it is not
#                              running, wait until `docker info` answers (idempotent; seconds when
#                              already running)
#   scripts/docker.sh stop     stop the dockerd this script started (never one it did not start)
#   scripts/docker.sh status   say whether a daemon answers and whether this script started it
#
# The daemon we start logs to $RTCCDN_DOCKER_STATE/dockerd.log (default /var/lib/rtccdn/docker)
# and keeps its pid in dockerd.pid there. Its MTU follows the default-route interface (1400 on
# these VMs; docker's 1500 would blackhole large packets of `apt-get`/`npm ci` inside builds).
#
# Every command prints, as its last stdout line, the docker CLI to use (DOCKER=/path). Debian's
# CLI (/usr/bin/docker, 20.10) matches the engine and builds with BuildKit without the buildx
# plugin; a newer CLI elsewhere on PATH may lack buildx and then falls back to the legacy builder.
set -Eeuo pipefail

STEP="parse arguments"
log() { printf '[docker] %s\n' "$*" >&2; }
die() {
  printf '[docker] ERROR: step "%s": %s\n' "$STEP" "$*" >&2
  exit 1
}
trap 'rc=$?; [ "$BASHPID" != "$$" ] || printf "[docker] ERROR: step \"%s\" failed (exit %d)\n" "$STEP" "$rc" >&2; exit "$rc"' ERR

STATE="${RTCCDN_DOCKER_STATE:-/var/lib/rtccdn/docker}"
PIDFILE="$STATE/dockerd.pid"
LOGFILE="$STATE/dockerd.log"
CMD="${1:-ensure}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

docker_cli() {
  if [ -x /usr/bin/docker ]; then printf '/usr/bin/docker'; else command -v docker || true; fi
}

daemon_answers() {
  local cli
  cli="$(docker_cli)"
  [ -n "$cli" ] && timeout 10 "$cli" info >/dev/null 2>&1
}

# our_pid: the pid of the dockerd this script started, if it still runs.
our_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] || return 1
  printf '%s' "$pid"
}

ensure() {
  STEP="install docker.io"
  if ! command -v dockerd >/dev/null; then
    command -v apt-get >/dev/null || die "dockerd is missing and there is no apt-get"
    log "installing Debian's docker.io"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io iptables xz-utils ca-certificates >&2
    command -v dockerd >/dev/null || die "dockerd still missing after installing docker.io"
  fi

  STEP="check for a running daemon"
  if daemon_answers; then
    if our_pid >/dev/null; then log "dockerd (started by this script, pid $(our_pid)) is running"; else log "a Docker daemon is already running"; fi
    printf 'DOCKER=%s\n' "$(docker_cli)"
    return 0
  fi
  if pid="$(our_pid)"; then
    die "dockerd (pid $pid) runs but does not answer; see $LOGFILE or run '$0 stop'"
  fi

  STEP="start dockerd"
  as_root mkdir -p "$STATE"
  as_root rm -f "$PIDFILE"
  local mtu dev
  dev="$(ip -4 route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n1)"
  mtu=""
  [ -z "$dev" ] || mtu="$(cat "/sys/class/net/$dev/mtu" 2>/dev/null || true)"
  local args=(--pidfile "$PIDFILE")
  [ -z "$mtu" ] || args+=(--mtu "$mtu")
  log "starting dockerd${mtu:+ (mtu $mtu)}; log: $LOGFILE"
  # setsid: the daemon outlives this script and the CI step that called it. dockerd writes its
  # own pid file (--pidfile), which is how `stop` knows the daemon is ours.
  if [ "$(id -u)" -eq 0 ]; then
    setsid dockerd "${args[@]}" >>"$LOGFILE" 2>&1 </dev/null &
  else
    sudo -n sh -c 'exec setsid dockerd "$@" >>"$0" 2>&1 </dev/null' "$LOGFILE" "${args[@]}" &
  fi

  STEP="wait for dockerd"
  local i
  for i in $(seq 1 120); do
    if daemon_answers; then
      log "dockerd is ready ($(timeout 10 "$(docker_cli)" version --format '{{.Server.Version}}' 2>/dev/null))"
      printf 'DOCKER=%s\n' "$(docker_cli)"
      return 0
    fi
    if [ "$i" -gt 10 ] && ! our_pid >/dev/null; then
      tail -n 5 "$LOGFILE" | sed 's/^/    /' >&2
      die "dockerd exited during startup (log: $LOGFILE)"
    fi
    sleep 0.5
  done
  die "dockerd did not answer within 60 s (log: $LOGFILE)"
}

stop() {
  STEP="stop dockerd"
  local pid i
  if ! pid="$(our_pid)"; then
    log "no dockerd started by this script is running"
    as_root rm -f "$PIDFILE"
    printf 'DOCKER=%s\n' "$(docker_cli)"
    return 0
  fi
  log "stopping dockerd (pid $pid)"
  as_root kill -TERM "$pid"
  for i in $(seq 1 60); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "dockerd did not stop within 30 s: killing it"
    as_root kill -KILL "$pid" || true
  fi
  as_root rm -f "$PIDFILE"
  printf 'DOCKER=%s\n' "$(docker_cli)"
}

status() {
  STEP="status"
  if daemon_answers; then
    if pid="$(our_pid)"; then log "running (started by this script, pid $pid)"; else log "running (not started by this script)"; fi
  else
    log "not running"
  fi
  printf 'DOCKER=%s\n' "$(docker_cli)"
}

case "$CMD" in
  ensure) ensure ;;
  stop) stop ;;
  status) status ;;
  -h | --help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command '$CMD' (use ensure, stop or status)" ;;
esac
