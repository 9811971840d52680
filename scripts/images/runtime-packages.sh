#!/usr/bin/env bash
# Prints the Debian packages (one per line) that provide the shared libraries a binary links, so
# that a runtime image installs exactly those (used by the Dockerfile's mediasoup-worker stage;
# the worker links Debian's libssl, libuv, libsrtp2, ... and the set changes with mediasoup).
#   runtime-packages.sh <binary>
set -Eeuo pipefail
bin=${1:?usage: runtime-packages.sh <binary>}
ldd "$bin" >/dev/null || { echo "runtime-packages.sh: ldd $bin failed" >&2; exit 1; }
if ldd "$bin" | grep -q 'not found'; then
  echo "runtime-packages.sh: $bin has unresolved libraries: $(ldd "$bin" | grep 'not found' | tr -s ' \n' ' ')" >&2
  exit 1
fi
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
  pkg=""
  for candidate in "$lib" "$(realpath "$lib")" "${lib#/usr}" "/usr${lib}"; do
    if pkg="$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1)" && [ -n "$pkg" ]; then break; fi
  done
  [ -n "$pkg" ] || { echo "runtime-packages.sh: no Debian package provides $lib" >&2; exit 1; }
  printf '%s\n' "$pkg"
done | sort -u
