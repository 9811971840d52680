# rtccdn images: `docker build --target media-node -t rtccdn/media-node .` and
# `docker build --target operator -t rtccdn/operator .` (context: the repository root).
#
# NOTE: written for Debian 12 like the development machines, but not built in this project's own
# environment (it has no container engine); the steps are the ones scripts/setup.sh and
# scripts/build-mediasoup-worker.sh run there, where they are tested.

# --- build: npm packages and the mediasoup worker (built offline against Debian libraries) ------
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# mediasoup's own postinstall would fetch a prebuilt worker from GitHub; ours builds it below.
RUN MEDIASOUP_WORKER_BIN=/nonexistent npm ci --omit=dev --no-audit --no-fund
COPY scripts ./scripts
RUN apt-get update && bash scripts/build-mediasoup-worker.sh && rm -rf /var/lib/apt/lists/*

# --- media node: origin, edge, transcoder or standalone, by ROLE -------------------------------
FROM node:24-bookworm-slim AS media-node
# Runtime libraries the worker links (see build-mediasoup-worker.sh) and FFmpeg for transcoders.
RUN apt-get update \
  && apt-get install -y --no-install-recommends libssl3 libuv1 libsrtp2-1 \
     libabsl20220623 ffmpeg tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY media-node ./media-node
USER node
EXPOSE 8080 8081
# tini forwards SIGTERM, so the node drains sessions and exits 0 on pod termination.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "media-node/src/main.ts"]

# --- operator -------------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS operator
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY operator ./operator
# The operator writes ACLs through the media node's own Redis layout module.
COPY media-node ./media-node
USER node
EXPOSE 8090
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "operator/src/main.ts"]
