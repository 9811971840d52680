import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installErrorHandler, QuietRequestLog } from '../../contract/errors.js';
import type { MediaNode } from '../MediaNode.js';
import { registerAclRoutes } from './acl.js';
import { registerDemoRoutes } from './demo.js';
import { hlsRequestKind, registerHlsRoutes } from './hls.js';
import { registerHealthRoutes, registerPublicStreamList } from './ops.js';
import { registerSessionRoutes } from './sessions.js';
import { readTlsPair, type SecureContextTarget, TlsReloader } from './tls.js';

/** 64 KiB: far above any real offer (a browser's is ~5 KiB), small enough to shed abuse early. */
export const MAX_SDP_BYTES = 64 * 1024;

/** How long browsers keep to HTTPS for a node that serves it (a year, as is usual). */
const HSTS_MAX_AGE_SECONDS = 31_536_000;

/**
 * Builds the node's public HTTP API (not yet listening): plain HTTP/1.1, or with TLS_CERT_FILE and
 * TLS_KEY_FILE HTTPS with HTTP/2 for clients that offer it (ALPN) and HTTP/1.1 for the others,
 * the certificate reloaded when its files change. Throws ConfigError for an unusable pair.
 */
export async function createHttpServer(node: MediaNode): Promise<FastifyInstance> {
  const tls = node.config.tls;
  const pair = tls ? readTlsPair(tls) : undefined;
  // The routes are the same over both: they see requests through fastify's API, never the raw
  // HTTP/1 or HTTP/2 objects, so the instance is typed as the HTTP/1 one they are written for.
  const options = {
    loggerInstance: node.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Requests are logged once, by the onResponse hook below, with the fields we want.
    logController: new QuietRequestLog(),
    bodyLimit: MAX_SDP_BYTES,
    // Long stream names must reach the name check (a 400 with the rule), not fastify's 414.
    routerOptions: { maxParamLength: 1024 },
    // Keep-alive connections must not hold SIGTERM hostage.
    forceCloseConnections: true,
    return503OnClosing: true,
    // The client address that access control and quotas count: X-Forwarded-For is believed only
    // when the connection comes from a listed proxy (TRUSTED_PROXIES), never from anyone else.
    trustProxy: node.config.trustedProxies.length > 0 ? node.config.trustedProxies : false,
  };
  const app = pair
    ? (Fastify({
        ...options,
        http2: true,
        https: { allowHTTP1: true, cert: pair.cert, key: pair.key },
      }) as unknown as FastifyInstance)
    : Fastify(options);

  if (tls && pair) {
    const reloader = new TlsReloader(tls, app.server as unknown as SecureContextTarget, node.logger, pair);
    app.addHook('onClose', async () => reloader.close());
    // A browser that reached this host over HTTPS keeps to HTTPS (a player page's WHIP/WHEP
    // calls and the keys in them are never sent in clear on a later visit). Not with
    // includeSubDomains: the node cannot speak for other hosts of its domain.
    app.addHook('onSend', async (_request, reply) => {
      reply.header('Strict-Transport-Security', `max-age=${HSTS_MAX_AGE_SECONDS}`);
    });
    node.logger.info(
      { fingerprint: pair.fingerprint, validTo: pair.validTo },
      'HTTPS on the public port (HTTP/2 and HTTP/1.1)',
    );
  }

  // Browser players and publishers on other origins may use WHIP, WHEP, HLS (hls.js fetches
  // playlists and segments) and the public stream list — and nothing else: CORS is granted per routed URL, so a web page can never make a
  // browser send a cross-origin write to the ACL API (its preflight gets no CORS answer).
  const corsRoutes = new Set(CORS_ROUTES);
  await app.register(cors, {
    delegator: (request, callback) =>
      callback(null, {
        ...CORS_OPTIONS,
        origin: corsRoutes.has(request.routeOptions.url ?? '') ? '*' : false,
      }),
  });

  // Any body is read as text and the route decides: WHIP/WHEP answer a wrong Content-Type
  // with 415, trickle-ICE PATCHes with 405 (a parser error would pre-empt both).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_SDP_BYTES }, (_req, body, done) =>
    done(null, body),
  );

  app.addHook('onResponse', async (request, reply) => {
    // The routed URL, not the raw one: `/wh%65p/x` is a WHEP request too and is counted as one.
    const route = request.routeOptions.url ?? '';
    const protocol = /^\/(whip|whep|hls)\//.exec(route)?.[1];
    if (!protocol) return;
    if (protocol === 'hls') {
      const file = (request.params as Record<string, string> | undefined)?.['file'];
      node.metrics.hlsRequests.inc({ kind: hlsRequestKind(route, file), status: String(reply.statusCode) });
    } else {
      node.metrics.requests.inc({ protocol, method: request.method, status: String(reply.statusCode) });
    }
    const level = reply.statusCode >= 500 ? 'error' : 'info';
    // The decoded path, never the query string: `?key=` carries viewers' access keys (and `?t=`
    // the signed URLs of HLS players).
    const path = routedPath(request.url);
    request.log[level](
      {
        method: request.method,
        url: path,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      `${request.method} ${path} ${reply.statusCode}`,
    );
  });

  // One error model: every refusal answers {statusCode, error, code, message, data?}; an
  // unexpected error is logged here, once.
  installErrorHandler(app);

  registerSessionRoutes(app, node);
  registerHlsRoutes(app, node);
  if (node.ingest.accepts) await registerAclRoutes(app, node);
  registerHealthRoutes(app, node);
  registerPublicStreamList(app, node);
  if (node.config.demoPage) registerDemoRoutes(app);
  return app;
}

/** Routes that answer cross-origin requests (their OPTIONS routes included). */
const CORS_ROUTES = [
  '/whip/:stream',
  '/whep/:stream',
  '/whip/:stream/:session',
  '/whep/:stream/:session',
  '/api/v1/streams',
  '/hls/:stream/index.m3u8',
  '/hls/:stream/:variant/:file',
];

const CORS_OPTIONS = {
  methods: ['GET', 'POST', 'DELETE', 'PATCH', 'OPTIONS'],
  allowedHeaders: ['Authorization', 'Content-Type', 'If-Match'],
  exposedHeaders: [
    'Location',
    'ETag',
    'Link',
    'Accept-Post',
    'Accept-Patch',
    'Retry-After',
    'WWW-Authenticate',
  ],
  maxAge: 86400,
  // WHIP/WHEP define OPTIONS themselves (Accept-Post); let the routes answer after CORS headers.
  preflightContinue: true,
};

/** The path of a request target, %-decoded, without the query string (which may carry keys). */
export function routedPath(url: string): string {
  const path = url.split('?')[0] ?? '';
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
