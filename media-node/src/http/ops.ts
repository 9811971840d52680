import type { FastifyInstance } from 'fastify';
import type { MediaNode } from '../MediaNode.js';

/** Liveness, readiness, Prometheus metrics and a read-only list of live streams. */
export function registerOpsRoutes(app: FastifyInstance, node: MediaNode): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const ready = node.ready;
    return reply
      .code(ready ? 200 : 503)
      .send({ ready, workers: node.pool.workers.length, ...(node.draining ? { draining: true } : {}) });
  });

  app.get('/metrics', async (_request, reply) => {
    return reply
      .header('Content-Type', node.metrics.registry.contentType)
      .send(await node.metrics.registry.metrics());
  });

  app.get('/api/v1/streams', async () => {
    const viewers = new Map<string, number>();
    for (const session of node.sessions.values()) {
      if (session.protocol === 'whep')
        viewers.set(session.streamName, (viewers.get(session.streamName) ?? 0) + 1);
    }
    return {
      streams: [...node.streams.values()].map((stream) => ({
        name: stream.name,
        tracks: stream.producers.map((producer) => ({
          kind: producer.kind,
          codec: producer.rtpParameters.codecs[0]?.mimeType,
        })),
        viewers: viewers.get(stream.name) ?? 0,
      })),
    };
  });
}
