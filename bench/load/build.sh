#!/usr/bin/env bash
# Builds rtcload (this folder's Go source; its modules come from the Go module proxy, pinned by
# go.sum) into a cache keyed by the source's hash, and prints the binary's path (last stdout
# line). Nothing built or downloaded lands in the repository.
#   cache: ${RTCCDN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn}/rtcload/<hash>/rtcload
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${RTCCDN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "[rtcload] error: Go not found (install Go >= 1.24 or set GO=)" >&2; exit 1; }
KEY="$(cd "$HERE" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
OUT="$CACHE/rtcload/$KEY/rtcload"
if [ ! -x "$OUT" ]; then
  echo "[rtcload] building $OUT" >&2
  mkdir -p "$(dirname "$OUT")"
  (cd "$HERE" && GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS=-modcacherw CGO_ENABLED=0 \
    "$GO" build -trimpath -o "$OUT.tmp" .)
  mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
