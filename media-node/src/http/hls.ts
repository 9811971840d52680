import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRtccdnError, RtccdnError } from '../../contract/errors.js';
import { MEDIA_PLAYLIST } from '../hls/HlsJob.js';
import type { BlockingReload } from '../hls/HlsPlayback.js';
import { INIT_FILE } from '../hls/LlHlsPlaylist.js';
import type { MediaNode } from '../MediaNode.js';
import { viewerKey } from './sessions.js';

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
const NO_STORE = 'private, no-store';

/**
 * HLS: `GET /hls/{stream}/index.m3u8` (the access key as for WHEP: `Authorization: Bearer` or
 * `?key=`) → the multivariant playlist with signed URLs; `GET /hls/{stream}/{variant}/media.m3u8`
 * and its init section, parts and segments (`?t=` signed; a media playlist request may add
 * `_HLS_msn`/`_HLS_part`, a blocking reload, outside the signature). Playlists are never cached (they carry signed URLs, and the
 * key may be in the multivariant request's URL); segments only privately, for their URL's life.
 * In a CDN a request whose signed URL names another edge is served by that edge (forwarded).
 */
export function registerHlsRoutes(app: FastifyInstance, node: MediaNode): void {
  const hls = node.hls;
  if (!hls) return;
  const refused = (error: unknown) => {
    if (isRtccdnError(error) && error.status >= 400 && error.status < 500) {
      node.metrics.hlsRefusals.inc({ code: error.code });
    }
    return error;
  };
  const noStore = (reply: FastifyReply) =>
    reply.header('Cache-Control', NO_STORE).header('Referrer-Policy', 'no-referrer');

  app.get<{ Params: { stream: string } }>('/hls/:stream/index.m3u8', async (request, reply) => {
    noStore(reply);
    const playlist = await hls
      .multivariant(request.params.stream, viewerKey(request, node.config.access.allowQueryKey), request.ip)
      .catch((error) => {
        throw refused(error);
      });
    return reply.type(PLAYLIST_TYPE).send(playlist);
  });

  app.get<{ Params: { stream: string; variant: string; file: string } }>(
    '/hls/:stream/:variant/:file',
    async (request, reply) => {
      const { stream, variant, file } = request.params;
      const token = signedToken(request);
      noStore(reply);
      try {
        const reload = file === MEDIA_PLAYLIST ? blockingReload(request) : undefined;
        // Behind a load balancer: the edge that admitted the player packages its stream, and
        // every later request is served by that packager (its sequence numbers and bytes).
        const cluster = node.cluster;
        const holder = cluster && token ? hls.holderOf(stream, variant, file, token) : undefined;
        if (cluster && token && holder !== undefined) {
          const answer = await cluster.forwardHls(
            holder,
            { stream, variant, name: file },
            { token, clientIp: request.ip, msn: reload?.msn, part: reload?.part },
          );
          for (const header of RELAYED_HEADERS) {
            const value = answer.headers.get(header);
            if (value !== null) reply.header(header, value);
          }
          return reply.code(answer.status).send(answer.body);
        }
        const answer = await serveHlsFile(node, {
          stream,
          variant,
          file,
          token,
          reload,
          clientIp: request.ip,
        });
        return reply.header('Cache-Control', answer.cacheControl).type(answer.type).send(answer.body);
      } catch (error) {
        throw refused(error);
      }
    },
  );
}

/** What a forwarding edge passes on of the holder's answer, besides its status and body. */
const RELAYED_HEADERS = ['content-type', 'cache-control', 'retry-after'] as const;

export interface HlsFileRequest {
  stream: string;
  variant: string;
  file: string;
  token: string | undefined;
  reload: BlockingReload | undefined;
  clientIp: string;
}

/**
 * A media playlist (blocking reload included), init section, part or segment, after the checks
 * of HlsPlayback: what the public route answers, and the internal one for another edge.
 */
export async function serveHlsFile(
  node: MediaNode,
  request: HlsFileRequest,
): Promise<{ type: string; cacheControl: string; body: string | Buffer }> {
  const hls = node.hls;
  if (!hls) throw new RtccdnError('WRONG_NODE', 'this node does not serve HLS');
  const { stream, variant, file, token, reload, clientIp } = request;
  if (file === MEDIA_PLAYLIST) {
    return {
      type: PLAYLIST_TYPE,
      cacheControl: NO_STORE,
      body: await hls.mediaPlaylist(stream, variant, token, clientIp, reload),
    };
  }
  return {
    type: 'video/mp4',
    cacheControl: `private, max-age=${Math.floor(node.config.hls.segmentUrlTtlMs / 1000)}`,
    body: await hls.file(stream, variant, file, token, clientIp),
  };
}

const COUNT = /^[0-9]{1,9}$/;

/**
 * The blocking playlist reload a media playlist request asks for (`_HLS_msn`, `_HLS_part`), or
 * undefined; INVALID_REQUEST when malformed. `_HLS_skip` is ignored: the playlists offer no
 * delta updates (no CAN-SKIP-UNTIL), so players send none, and a full playlist answers one.
 */
export function blockingReload(request: FastifyRequest): BlockingReload | undefined {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const msn = query['_HLS_msn'];
  const part = query['_HLS_part'];
  if (msn === undefined && part === undefined) return undefined;
  if (typeof msn !== 'string' || !COUNT.test(msn)) {
    throw new RtccdnError(
      'INVALID_REQUEST',
      '_HLS_msn must be one non-negative integer (and given with _HLS_part)',
    );
  }
  if (part !== undefined && (typeof part !== 'string' || !COUNT.test(part))) {
    throw new RtccdnError('INVALID_REQUEST', '_HLS_part must be one non-negative integer');
  }
  return { msn: Number(msn), part: part === undefined ? undefined : Number(part) };
}

export function signedToken(request: FastifyRequest): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.['t'];
  return typeof value === 'string' ? value : undefined;
}

/** The kind of HLS request a routed URL and its file name are, for metrics. */
export function hlsRequestKind(route: string, file: string | undefined): string {
  if (route.endsWith('/index.m3u8')) return 'multivariant';
  if (file === MEDIA_PLAYLIST) return 'media';
  if (file === INIT_FILE) return 'init';
  if (file?.startsWith('part')) return 'part';
  return 'segment';
}
