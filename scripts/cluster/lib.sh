# Shared helpers of the scripts/cluster/*.sh scripts (sourced, not run). Each script sets
# LOG_TAG before sourcing, and STEP before each step: a failure prints one line naming the step
# and the command that failed.

STEP="start"
STEP_LOG=""
BG_PID=""
LOG_TAG="${LOG_TAG:-cluster}"

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }

# A failure ends the script through the EXIT trap, which runs ON_FAILURE (a function name, e.g.
# tear down what was started) and then prints the one-line error as the last line of stderr.
ON_FAILURE=""
FAIL_MSG=""
die() {
  FAIL_MSG="$(printf '[%s] ERROR: step "%s": %s' "$LOG_TAG" "$STEP" "$*")"
  # In a subshell (e.g. a command substitution) the main shell cannot see FAIL_MSG: print it here.
  [ "$BASHPID" = "$$" ] || printf '%s\n' "$FAIL_MSG" >&2
  exit 1
}
lib_on_err() {
  # In a trap, BASH_COMMAND is the command that failed: a step runs several, and the line names it.
  local rc=$? failed=$BASH_COMMAND
  # Command substitutions and subshells inherit the trap (set -E): report from the main shell.
  if [ "$BASHPID" = "$$" ] && [ -z "$FAIL_MSG" ]; then
    FAIL_MSG="$(printf '[%s] ERROR: step "%s" failed (exit %d) at: %s%s' "$LOG_TAG" "$STEP" "$rc" "$failed" "${STEP_LOG:+; log: $STEP_LOG}")"
  fi
  exit "$rc"
}
lib_on_exit() {
  local rc=$?
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; fi
  [ "$BASHPID" = "$$" ] || return 0
  if [ "$rc" != 0 ]; then
    trap - ERR
    if [ -n "$STEP_LOG" ] && [ -s "$STEP_LOG" ]; then
      log "last lines of $STEP_LOG:"
      tail -n 25 "$STEP_LOG" | sed 's/^/    /' >&2
    fi
    if [ -n "$ON_FAILURE" ]; then
      local handler=$ON_FAILURE
      ON_FAILURE=""
      set +e
      "$handler" >&2
      set -e
    fi
    printf '%s\n' "${FAIL_MSG:-[$LOG_TAG] ERROR: step \"$STEP\" failed (exit $rc)}" >&2
  fi
}
trap lib_on_err ERR
trap lib_on_exit EXIT

# run_logged <dir> <log> <cmd>...: a long command in <dir> at low priority (the machine is shared),
# its output in <log>, with a heartbeat every minute so CI logs show progress.
run_logged() {
  local dir=$1 logf=$2 start=$SECONDS next=60
  shift 2
  STEP_LOG="$logf"
  (cd "$dir" && exec nice -n 10 "$@") >"$logf" 2>&1 &
  BG_PID=$!
  while kill -0 "$BG_PID" 2>/dev/null; do
    sleep 1
    if [ $((SECONDS - start)) -ge "$next" ]; then
      log "  ... still running ($(((SECONDS - start) / 60)) min; log: $logf)"
      next=$((next + 60))
    fi
  done
  local pid=$BG_PID
  BG_PID=""
  wait "$pid"
  STEP_LOG=""
}

# json_field <json> <field>: a top-level string field of `go mod download -json` output.
json_field() { printf '%s\n' "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"; }

apt_updated=0
# ensure_pkgs <package>...: installs the Debian packages that are not installed yet.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "missing Debian packages ${missing[*]} and no apt-get"
  if [ "$apt_updated" = 0 ]; then
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing Debian packages: ${missing[*]}"
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# wait_until <seconds> <description> <cmd>...: polls <cmd> every 0.5 s.
wait_until() {
  local limit=$1 what=$2 end
  shift 2
  end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after ${limit} s waiting for $what"
    sleep 0.5
  done
}
