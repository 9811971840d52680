import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installErrorHandler, isRtccdnError, QuietRequestLog, RtccdnError } from '../../contract/errors.js';
import {
  CLAIMS_PATH,
  type ClaimStatus,
  DRAIN_PATH,
  DrainRequestSchema,
  deriveSigningKey,
  HLS_PATH,
  RELAYS_PATH,
  RENDITIONS_PATH,
  RESPONSE_SIGNATURE_HEADER,
  RelayRequestSchema,
  type RelayStatus,
  RenditionRequestSchema,
  RequestVerifier,
  SESSIONS_PATH,
  signResponse,
} from '../../contract/internal-api.js';
import { MEDIA_PLAYLIST } from '../hls/HlsJob.js';
import type { MediaNode } from '../MediaNode.js';
import { blockingReload, serveHlsFile, signedToken } from './hls.js';
import { registerOpsRoutes } from './ops.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received: the HMAC covers these bytes. */
    rawBody?: string;
    /** Nonce of a verified internal call: its answer is signed with it. */
    internalNonce?: string;
  }
}

/**
 * The internal port: `/healthz`, `/metrics` and the full stream list for the cluster's own
 * monitoring (unauthenticated — keep this port off the internet, e.g. a NetworkPolicy), and, in
 * a CDN, the node-to-node API — relays, renditions, sessions, HLS, drain and dump — which answers only calls
 * signed with CLUSTER_SECRET for this very node (the contract's internal-api/hmac.ts), and signs its answers.
 */
export async function createInternalServer(node: MediaNode): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: node.logger.child({ component: 'internal-http' }) as FastifyBaseLogger,
    logController: new QuietRequestLog(),
    bodyLimit: 256 * 1024,
    forceCloseConnections: true,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    request.rawBody = body as string;
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new RtccdnError('INVALID_REQUEST', 'body is not valid JSON'), undefined);
    }
  });

  installErrorHandler(app);

  app.get('/healthz', async () => ({ status: 'ok' }));
  registerOpsRoutes(app, node);

  const cluster = node.config.cluster;
  if (cluster) {
    const key = deriveSigningKey(cluster.clusterSecret);
    await app.register(async (signed) => registerSignedRoutes(signed, node, key, cluster.nodeId));
  }
  return app;
}

/** An IPv4 or IPv6 address as Fastify gives `request.ip` (IPv4-mapped included). */
const CLIENT_IP = /^[0-9A-Fa-f.:]{2,64}$/;

/** The node-to-node routes, in a scope whose hooks authenticate every one of them. */
function registerSignedRoutes(app: FastifyInstance, node: MediaNode, key: Buffer, selfId: string): void {
  const verifier = new RequestVerifier(key, selfId);
  const refuse = (request: { url: string; ip: string; log: FastifyBaseLogger }, reason: string) => {
    request.log.warn({ url: request.url, ip: request.ip, reason }, 'internal call refused');
    return new RtccdnError('UNAUTHENTICATED_CALL', `unauthenticated internal call: ${reason}`, {
      challenge: 'RTCCDN-HMAC-SHA256',
    });
  };

  // Before the body is read: a call with no valid-looking signature for this node, or out of
  // the clock-skew window, costs nothing more than its headers.
  app.addHook('onRequest', async (request) => {
    const verdict = verifier.precheck(request.headers.authorization);
    if (!verdict.ok) throw refuse(request, verdict.reason);
  });
  // preHandler, not onRequest: the signature covers the body, which is parsed in between.
  app.addHook('preHandler', async (request) => {
    const verdict = verifier.verify(
      { method: request.method, path: request.url, body: request.rawBody ?? '' },
      request.headers.authorization,
    );
    if (!verdict.ok) throw refuse(request, verdict.reason);
    request.internalNonce = verdict.nonce;
  });
  // Every answer to a verified call — errors included — is signed for that call.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.internalNonce === undefined) return payload;
    const body =
      typeof payload === 'string' || Buffer.isBuffer(payload)
        ? payload
        : payload === null || payload === undefined
          ? ''
          : undefined;
    if (body === undefined) return payload;
    reply.header(RESPONSE_SIGNATURE_HEADER, signResponse(key, request.internalNonce, reply.statusCode, body));
    return payload;
  });

  app.post(RELAYS_PATH, async (request, reply) => {
    const parsed = RelayRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RtccdnError(
        'INVALID_REQUEST',
        `invalid relay request: ${issue?.path.join('.')} ${issue?.message}`,
      );
    }
    const relays = node.relayServer;
    if (!relays) throw new RtccdnError('WRONG_NODE', 'this node does not serve relays');
    return reply.code(201).send(await relays.open(parsed.data));
  });

  app.delete<{ Params: { id: string } }>(`${RELAYS_PATH}/:id`, async (request, reply) => {
    if (!node.relayServer?.close(request.params.id, 'downstream closed it')) {
      throw new RtccdnError('RELAY_NOT_FOUND', `no relay ${request.params.id}`);
    }
    return reply.code(204).send();
  });

  // Probes of failover (cheap, no I/O): the receiving end of a quiet relay, a node finding a claim.
  app.get<{ Params: { id: string } }>(`${RELAYS_PATH}/:id`, async (request): Promise<RelayStatus> => {
    const relay = node.relayServer?.relays.get(request.params.id);
    if (!relay || relay.closed) throw new RtccdnError('RELAY_NOT_FOUND', `no relay ${request.params.id}`);
    return { relayId: relay.id, stream: relay.streamName };
  });

  app.get<{ Params: { stream: string } }>(`${CLAIMS_PATH}/:stream`, async (request): Promise<ClaimStatus> => {
    const held = node.cluster?.registry.heldStream(request.params.stream);
    if (!held)
      throw new RtccdnError('STREAM_NOT_LIVE', `this node holds no claim on ${request.params.stream}`);
    return { stream: held.name, claimId: held.claimId };
  });

  // A player's DELETE that reached another node of the CDN (http/sessions.ts passes it on).
  app.delete<{ Params: { protocol: string; stream: string; session: string } }>(
    `${SESSIONS_PATH}/:protocol/:stream/:session`,
    async (request, reply) => {
      const { protocol, stream, session } = request.params;
      if (protocol !== 'whip' && protocol !== 'whep')
        throw new RtccdnError('INVALID_REQUEST', `unknown protocol ${JSON.stringify(protocol)}`);
      node.sessions.endOrExplain(protocol, stream, session);
      return reply.code(200).send();
    },
  );

  // A player's HLS request that reached another edge than the one packaging its stream
  // (http/hls.ts passes it on): the same checks and answer as the public route, here.
  app.get<{ Params: { stream: string; variant: string; file: string } }>(
    `${HLS_PATH}/:stream/:variant/:file`,
    async (request, reply) => {
      const { stream, variant, file } = request.params;
      const clientIp = (request.query as Record<string, unknown> | undefined)?.['ip'];
      if (typeof clientIp !== 'string' || !CLIENT_IP.test(clientIp))
        throw new RtccdnError('INVALID_REQUEST', '?ip= must be the player’s IP address');
      const answer = await serveHlsFile(node, {
        stream,
        variant,
        file,
        token: signedToken(request),
        reload: file === MEDIA_PLAYLIST ? blockingReload(request) : undefined,
        clientIp,
      }).catch((error: unknown) => {
        if (isRtccdnError(error) && error.status >= 400 && error.status < 500)
          node.metrics.hlsRefusals.inc({ code: error.code });
        throw error;
      });
      return reply.header('Cache-Control', answer.cacheControl).type(answer.type).send(answer.body);
    },
  );

  app.get('/internal/v1/dump', async () => node.dump());

  app.post(RENDITIONS_PATH, async (request, reply) => {
    const parsed = RenditionRequestSchema.safeParse(request.body);
    if (!parsed.success)
      throw new RtccdnError('INVALID_REQUEST', 'body must be {"stream": <name>, "profile": <profile>}');
    if (!node.transcoder) throw new RtccdnError('WRONG_NODE', 'this node does not transcode');
    const job = await node.transcoder.start(parsed.data.stream, parsed.data.profile);
    return reply.code(201).send({ rendition: job.name, profile: job.profile.name });
  });

  app.post(DRAIN_PATH, async (request) => {
    const parsed = DrainRequestSchema.safeParse(request.body);
    if (!parsed.success)
      throw new RtccdnError('INVALID_REQUEST', 'body must be {"draining": true|false, "deadlineMs"?: <ms>}');
    node.setDraining(parsed.data.draining, parsed.data.deadlineMs);
    return { draining: node.draining, viewers: node.sessions.viewerCount };
  });
}
