import type { FastifyInstance } from 'fastify';
import type { MediaNode } from '../MediaNode.js';

/** Liveness and readiness: public, they reveal nothing about streams. */
export function registerHealthRoutes(app: FastifyInstance, node: MediaNode): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const ready = node.ready;
    return reply
      .code(ready ? 200 : 503)
      .send({ ready, workers: node.pool.workers.length, ...(node.draining ? { draining: true } : {}) });
  });
}

/**
 * The live streams anyone may watch without a key (the demo page's picker). Protected streams
 * are not listed here: their names are for those who hold a key (and for the internal port).
 */
export function registerPublicStreamList(app: FastifyInstance, node: MediaNode): void {
  app.get('/api/v1/streams', async () => ({
    streams: liveStreams(node).filter((stream) => node.access.isPublic(stream.name)),
  }));
}

/**
 * Prometheus metrics and every live stream, protected ones included: on the internal port only
 * (per-stream series and names must not be served to anyone on the public port).
 */
export function registerOpsRoutes(app: FastifyInstance, node: MediaNode): void {
  app.get('/metrics', async (_request, reply) => {
    return reply
      .header('Content-Type', node.metrics.registry.contentType)
      .send(await node.metrics.registry.metrics());
  });

  app.get('/api/v1/streams', async () => ({ streams: liveStreams(node) }));
}

function liveStreams(node: MediaNode) {
  return [...node.streams.values()].map((stream) => ({
    name: stream.name,
    tracks: stream.producers.map((producer) => ({
      kind: producer.kind,
      codec: producer.rtpParameters.codecs[0]?.mimeType,
    })),
    viewers: node.sessions.viewersOf(stream.name),
  }));
}
