import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { z } from 'zod';
import { HttpError } from '../errors.js';
import { RequestVerifier } from '../internal/hmac.js';
import type { MediaNode } from '../MediaNode.js';
import {
  RELAYS_PATH,
  RENDITIONS_PATH,
  RelayRequestSchema,
  RenditionRequestSchema,
} from '../relay/protocol.js';

/** POST /internal/v1/drain (the operator scaling edges down). */
const DrainRequestSchema = z.object({ draining: z.boolean() });

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received: the HMAC covers these bytes. */
    rawBody?: string;
  }
}

/**
 * The node-to-node API on INTERNAL_PORT: relays between nodes, and a dump of the media
 * objects for operators and tests. Every route but /healthz requires a request signed with
 * CLUSTER_SECRET (internal/hmac.ts); anything else gets 401.
 */
export async function createInternalServer(node: MediaNode, clusterSecret: string): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: node.logger.child({ component: 'internal-http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
    forceCloseConnections: true,
  });
  const verifier = new RequestVerifier(clusterSecret);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    request.rawBody = body as string;
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new HttpError(400, 'body is not valid JSON'), undefined);
    }
  });

  // preHandler, not onRequest: the signature covers the body, which is parsed in between.
  app.addHook('preHandler', async (request) => {
    if (request.url === '/healthz') return;
    const verdict = verifier.verify(
      { method: request.method, path: request.url, body: request.rawBody ?? '' },
      request.headers.authorization,
    );
    if (!verdict.ok) {
      request.log.warn({ url: request.url, ip: request.ip, reason: verdict.reason }, 'internal call refused');
      throw new HttpError(401, `unauthenticated internal call: ${verdict.reason}`, {
        'WWW-Authenticate': 'RTCCDN-HMAC-SHA256',
      });
    }
  });

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    const status = error instanceof HttpError ? error.status : (error.statusCode ?? 500);
    if (status >= 500) request.log.error({ err: error, url: request.url }, 'internal request failed');
    if (error instanceof HttpError) reply.headers(error.headers);
    reply
      .code(status)
      .send({ statusCode: status, message: status >= 500 ? 'internal error' : error.message });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.post(RELAYS_PATH, async (request, reply) => {
    const parsed = RelayRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, `invalid relay request: ${issue?.path.join('.')} ${issue?.message}`);
    }
    const relays = node.relayServer;
    if (!relays) throw new HttpError(404, 'this node does not serve relays');
    return reply.code(201).send(await relays.open(parsed.data));
  });

  app.delete<{ Params: { id: string } }>(`${RELAYS_PATH}/:id`, async (request, reply) => {
    if (!node.relayServer?.close(request.params.id, 'downstream closed it')) {
      throw new HttpError(404, `no relay ${request.params.id}`);
    }
    return reply.code(204).send();
  });

  app.get('/internal/v1/dump', async () => node.dump());

  app.post(RENDITIONS_PATH, async (request, reply) => {
    const parsed = RenditionRequestSchema.safeParse(request.body);
    if (!parsed.success) throw new HttpError(400, 'body must be {"stream": <name>, "profile": <profile>}');
    if (!node.transcoder) throw new HttpError(404, 'this node does not transcode');
    const job = await node.transcoder.start(parsed.data.stream, parsed.data.profile);
    return reply.code(201).send({ rendition: job.name, profile: job.profile.name });
  });

  app.post('/internal/v1/drain', async (request) => {
    const parsed = DrainRequestSchema.safeParse(request.body);
    if (!parsed.success) throw new HttpError(400, 'body must be {"draining": true|false}');
    node.setDraining(parsed.data.draining);
    return { draining: node.draining, viewers: node.viewerCount };
  });

  return app;
}
