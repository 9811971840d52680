# rtccdn's local base image (scripts/images.sh base): Debian 12 minbase made by mmdebstrap and
# imported into Docker (DEBIAN_IMAGE), plus Node.js and npm unpacked from npm registry tarballs
# that scripts/images.sh fetched and checked against their pinned sha512 integrity. It has the
# layout of the public node:24-bookworm-slim image the Dockerfile defaults to: node and npm on
# /usr/local/bin, a `node` user and group with id 1000.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE} AS unpack
COPY node.tgz npm.tgz /tmp/
RUN mkdir -p /out/bin /out/lib/node_modules/npm \
  && tar -xzf /tmp/node.tgz -C /out --strip-components=1 package/bin/node \
  && tar -xzf /tmp/npm.tgz -C /out/lib/node_modules/npm --strip-components=1 \
  && ln -s ../lib/node_modules/npm/bin/npm-cli.js /out/bin/npm \
  && ln -s ../lib/node_modules/npm/bin/npx-cli.js /out/bin/npx

FROM ${DEBIAN_IMAGE}
COPY --from=unpack /out/ /usr/local/
RUN groupadd --gid 1000 node \
  && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
  && node --version && npm --version
CMD ["node"]
