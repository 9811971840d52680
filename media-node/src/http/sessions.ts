import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RtccdnError } from '../../contract/errors.js';
import { requireBearer } from '../../contract/http.js';
import {
  PublishedStreamNameSchema,
  RENDITION_SEPARATOR,
  SessionIdSchema,
  StreamNameSchema,
} from '../../contract/names.js';
import { NodeIdSchema } from '../../contract/redis.js';
import type { MediaNode } from '../MediaNode.js';
import type { SessionProtocol } from '../media/Session.js';

/**
 * WHIP (RFC 9725) and WHEP routes. Both protocols share one shape: POST an SDP offer to
 * /{protocol}/{stream} → 201 + Location of the session resource; DELETE that resource ends it.
 */
export function registerSessionRoutes(app: FastifyInstance, node: MediaNode): void {
  for (const protocol of ['whip', 'whep'] as const) {
    const authorize = (request: FastifyRequest) => {
      if (protocol === 'whip' && node.config.publishToken !== undefined) {
        requireBearer(request.headers.authorization, node.config.publishToken, 'whip');
      }
    };

    app.options(`/${protocol}/:stream`, async (_request, reply) => {
      reply.header('Accept-Post', 'application/sdp').code(204).send();
    });
    // Players on other origins end their session with a DELETE: its preflight lands here.
    app.options(`/${protocol}/:stream/:session`, async (_request, reply) => {
      reply.header('Allow', 'DELETE, PATCH, OPTIONS').code(204).send();
    });

    app.post<{ Params: { stream: string } }>(`/${protocol}/:stream`, async (request, reply) => {
      // A viewer names a published stream (`?profile=` picks a rendition, `name~profile` is the
      // same request): admission, grants and revocation always go through the source's ACL.
      const target =
        protocol === 'whip'
          ? { source: parseStreamName(request.params.stream), profile: undefined }
          : playTarget(request.params.stream, queryString(request, 'profile'));
      const streamName = target.source;
      authorize(request);
      const mediaType = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
      if (mediaType !== 'application/sdp') {
        throw new RtccdnError(
          'UNSUPPORTED_MEDIA_TYPE',
          `unsupported Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')}; use application/sdp`,
          { headers: { 'Accept-Post': 'application/sdp' } },
        );
      }
      if (typeof request.body !== 'string' || request.body.length === 0) {
        throw new RtccdnError(
          'INVALID_SDP',
          'request body must be an SDP offer (Content-Type: application/sdp)',
        );
      }
      const session =
        protocol === 'whip'
          ? await node.ingest.publish(streamName, request.body, request.ip)
          : await node.playback.play({
              stream: streamName,
              sdp: request.body,
              key: viewerKey(request, node.config.access.allowQueryKey),
              clientIp: request.ip,
              profile: target.profile,
            });
      return reply
        .code(201)
        .header('Content-Type', 'application/sdp')
        .header('Location', sessionLocation(session.path, node))
        .header('ETag', `"${session.id}"`)
        .send(session.answer);
    });

    app.delete<{ Params: { stream: string; session: string } }>(
      `/${protocol}/:stream/:session`,
      async (request, reply) => {
        // Sessions of renditions live under the rendition's name (`/whep/match~360p/{id}`).
        const streamName = parseStreamName(request.params.stream, StreamNameSchema);
        authorize(request);
        const sessionId = SessionIdSchema.safeParse(request.params.session);
        if (!sessionId.success) {
          throw new RtccdnError(
            'SESSION_NOT_FOUND',
            `no ${protocol.toUpperCase()} session ${request.params.session} on stream "${streamName}"`,
          );
        }
        const holder = sessionHolder(request, node);
        if (holder === undefined) node.sessions.endOrExplain(protocol, streamName, sessionId.data);
        else await holder.member.endRemoteSession(holder.nodeId, protocol, streamName, sessionId.data);
        return reply.code(200).send();
      },
    );

    // Trickle ICE and ICE restarts are not supported: the node is ICE-lite with all candidates
    // in the answer, so clients never need to PATCH. RFC 9725 asks for 405 here.
    app.patch(`/${protocol}/:stream/:session`, async () => {
      throw new RtccdnError('METHOD_NOT_ALLOWED', 'trickle ICE and ICE restarts are not supported', {
        headers: { Allow: 'DELETE' },
      });
    });
  }
}

/**
 * The session resource's URL. In a CDN it names the node holding the session (`?node=`): behind a
 * Service or an Ingress the player's DELETE may reach another node, which passes it on.
 */
function sessionLocation(path: string, node: MediaNode): string {
  const self = node.config.cluster?.nodeId;
  return self === undefined ? path : `${path}?node=${encodeURIComponent(self)}`;
}

/** The other node of the CDN that holds the session a DELETE names, if not this one. */
function sessionHolder(
  request: FastifyRequest,
  node: MediaNode,
): { member: NonNullable<MediaNode['cluster']>; nodeId: string } | undefined {
  const named = queryString(request, 'node');
  const member = node.cluster;
  if (named === undefined || member === undefined || named === node.config.cluster?.nodeId) return undefined;
  const nodeId = NodeIdSchema.safeParse(named);
  if (!nodeId.success)
    throw new RtccdnError('INVALID_REQUEST', `?node= is not a node id: ${nodeId.error.issues[0]?.message}`);
  return { member, nodeId: nodeId.data };
}

/**
 * The viewer's access key: `Authorization: Bearer <key>`, or `?key=` for players that cannot set
 * headers (when allowed; such URLs end up in browser history and proxy logs).
 */
export function viewerKey(request: FastifyRequest, allowQueryKey: boolean): string | undefined {
  const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1]?.trim();
  if (bearer) return bearer;
  if (!allowQueryKey) return undefined;
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.['key'] === 'string' ? query['key'] : undefined;
}

function queryString(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The source and profile a WHEP request names: `name` + `?profile=`, or `name~profile`. */
function playTarget(
  raw: string,
  queryProfile: string | undefined,
): { source: string; profile: string | undefined } {
  const at = raw.lastIndexOf(RENDITION_SEPARATOR);
  if (at < 0) return { source: parseStreamName(raw), profile: queryProfile };
  const source = parseStreamName(raw.slice(0, at));
  const profile = raw.slice(at + 1);
  if (queryProfile !== undefined && queryProfile !== profile) {
    throw new RtccdnError(
      'INVALID_REQUEST',
      `"${raw}" names profile "${profile}" but ?profile= asks for "${queryProfile}"`,
    );
  }
  return { source, profile };
}

function parseStreamName(raw: string, schema: typeof StreamNameSchema = PublishedStreamNameSchema): string {
  const result = schema.safeParse(raw);
  if (!result.success)
    throw new RtccdnError('INVALID_REQUEST', result.error.issues[0]?.message ?? 'invalid stream name');
  return result.data;
}

export type { SessionProtocol };
