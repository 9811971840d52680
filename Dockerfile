# rtccdn images (context: the repository root; BuildKit, the default builder of current Docker):
#
#   docker build --target media-node -t rtccdn/media-node .   origin / edge / transcoder / all, by ROLE
#   docker build --target operator   -t rtccdn/operator   .   the Kubernetes operator
#   docker build --target redis      -t rtccdn/redis      .   Redis for the chart (redis.enabled)
#
# `npm run images` (scripts/images.sh) builds both on a machine without a container registry: it
# makes a local Debian 12 + Node.js 24 base and passes it as BASE_IMAGE. Elsewhere the default,
# the public node:24-bookworm-slim, is used as is.
#
# What each image holds: compiled JavaScript (tsc, no TypeScript at run time) of the modules the
# program's entry point reaches and nothing else (scripts/images/closure.mjs follows the imports),
# the npm packages those modules import with their dependencies (scripts/images/prune-deps.mjs
# narrows package.json to them before `npm prune`), tini as init, a non-root user (1000:1000).
# The media node adds the mediasoup worker, built from source in this Dockerfile by
# scripts/build-mediasoup-worker.sh (offline, against Debian's -dev packages), the Debian
# libraries it links (found by scripts/images/runtime-packages.sh) and FFmpeg (transcoders). The
# operator has neither mediasoup nor FFmpeg (the closure step fails if it would need mediasoup).
# The Redis image is Debian's redis-server on the same base (its layers are shared with the others on
# a node), configured by scripts/images/redis.conf (append-only file in /data).
ARG BASE_IMAGE=node:24-bookworm-slim

# --- base: Node.js + tini --------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Where the registry is reached through a TLS-inspecting proxy, the build gets the host's CA bundle
# as the BuildKit secret `ca-certificates` (scripts/images.sh passes it; never stored in a layer).
# Every `npm ci` below runs with --ignore-scripts: mediasoup's own install script would fetch a
# prebuilt worker from GitHub; the worker is built in its own stage instead.

# --- compile: TypeScript -> JavaScript, and each program's closure ---------------------------------
FROM base AS compile
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,id=rtccdn-npm --mount=type=secret,id=ca-certificates \
  { [ ! -s /run/secrets/ca-certificates ] || export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; } \
  && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/images/closure.mjs scripts/images/check-imports.mjs ./scripts/images/
COPY media-node/src ./media-node/src
COPY media-node/contract ./media-node/contract
COPY operator/src ./operator/src
RUN npx tsc -p tsconfig.build.json \
  && node scripts/images/closure.mjs dist media-node/src/main.js /out/media-node \
  && node scripts/images/closure.mjs dist operator/src/main.js /out/operator --forbid mediasoup \
  && cp -r media-node/src/demo /out/media-node/app/dist/media-node/src/demo \
  && cp scripts/images/check-imports.mjs /out/

# --- npm packages of each program (cached while package-lock.json and its import set stay) --------
FROM base AS deps-media-node
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/images/prune-deps.mjs /tmp/
COPY --from=compile /out/media-node/packages.txt /tmp/packages.txt
RUN --mount=type=cache,target=/root/.npm,id=rtccdn-npm --mount=type=secret,id=ca-certificates \
  { [ ! -s /run/secrets/ca-certificates ] || export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; } \
  && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  && node /tmp/prune-deps.mjs /tmp/packages.txt \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete \
  && rm -rf node_modules/.package-lock.json \
  && find node_modules/mediasoup/worker -mindepth 1 -maxdepth 1 -exec rm -rf {} +

FROM base AS deps-operator
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/images/prune-deps.mjs /tmp/
COPY --from=compile /out/operator/packages.txt /tmp/packages.txt
RUN --mount=type=cache,target=/root/.npm,id=rtccdn-npm --mount=type=secret,id=ca-certificates \
  { [ ! -s /run/secrets/ca-certificates ] || export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; } \
  && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  && node /tmp/prune-deps.mjs /tmp/packages.txt \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete \
  && rm -rf node_modules/.package-lock.json \
  && if [ -e node_modules/mediasoup ]; then echo "mediasoup in the operator's packages" >&2; exit 1; fi

# --- the mediasoup worker, built from the npm package's C++ sources (cached while the lockfile and
# the worker build scripts stay; the script's own cache, in a cache mount, makes a lockfile change
# that keeps the mediasoup version cost only a reinstall of the build packages) --------------------
FROM base AS mediasoup-worker
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,id=rtccdn-npm --mount=type=secret,id=ca-certificates \
  { [ ! -s /run/secrets/ca-certificates ] || export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; } \
  && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
COPY scripts/build-mediasoup-worker.sh ./scripts/
COPY scripts/mediasoup-shims ./scripts/mediasoup-shims
COPY scripts/mediasoup-patches ./scripts/mediasoup-patches
COPY scripts/images/runtime-packages.sh ./scripts/images/
RUN --mount=type=cache,target=/root/.cache/rtccdn,id=rtccdn-mediasoup-worker \
  bash scripts/build-mediasoup-worker.sh \
  && mkdir -p /out \
  && cp node_modules/mediasoup/worker/out/Release/mediasoup-worker /out/ \
  && bash scripts/images/runtime-packages.sh /out/mediasoup-worker >/out/runtime-packages.txt \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# --- redis: the CDN's registry when the user has no Redis (helm/rtccdn, redis.enabled) ------------
# Debian's redis-server on the same base as the other images: on a Kubernetes node that runs them,
# only the Redis layer is new. Persistence: the append-only file in /data (a volume in the chart).
FROM base AS redis
RUN apt-get update \
  && apt-get install -y --no-install-recommends redis-server \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
  && mkdir -p /data \
  && chown 1000:1000 /data \
  && redis-server --version
COPY scripts/images/redis.conf /etc/rtccdn/redis.conf
COPY scripts/images/redis-entrypoint.sh /usr/local/bin/rtccdn-redis
USER 1000:1000
WORKDIR /data
EXPOSE 6379
# tini forwards SIGTERM to redis-server (the entry point execs it), which fsyncs the AOF and exits.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/rtccdn-redis"]
CMD []

# --- media node ------------------------------------------------------------------------------------
FROM base AS media-node
COPY --from=mediasoup-worker /out/runtime-packages.txt /tmp/
RUN apt-get update \
  && apt-get install -y --no-install-recommends ffmpeg $(cat /tmp/runtime-packages.txt) \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/runtime-packages.txt
WORKDIR /app
COPY package.json ./
COPY --from=deps-media-node /app/node_modules ./node_modules
COPY --from=mediasoup-worker /out/mediasoup-worker ./node_modules/mediasoup/worker/out/Release/mediasoup-worker
COPY --from=compile /out/media-node/app/ ./
RUN --mount=type=bind,from=compile,source=/out,target=/tmp/closure \
  node /tmp/closure/check-imports.mjs /tmp/closure/media-node/modules.txt media-node/src/main.js \
  && env -i ./node_modules/mediasoup/worker/out/Release/mediasoup-worker; test $? -eq 41
ENV NODE_ENV=production MEDIASOUP_WORKER_BIN=/app/node_modules/mediasoup/worker/out/Release/mediasoup-worker
USER 1000:1000
# HTTP (WHIP/WHEP, ACL, metrics), node-to-node API; WebRTC uses UDP+TCP RTC_PORT..+WORKERS-1.
EXPOSE 8080 8081
# tini forwards SIGTERM, so the node drains sessions and exits 0 on pod termination, and reaps
# FFmpeg children.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/media-node/src/main.js"]

# --- operator --------------------------------------------------------------------------------------
FROM base AS operator
WORKDIR /app
COPY package.json ./
COPY --from=deps-operator /app/node_modules ./node_modules
COPY --from=compile /out/operator/app/ ./
RUN --mount=type=bind,from=compile,source=/out,target=/tmp/closure \
  node /tmp/closure/check-imports.mjs /tmp/closure/operator/modules.txt operator/src/main.js
ENV NODE_ENV=production
USER 1000:1000
EXPOSE 8090
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/operator/src/main.js"]
