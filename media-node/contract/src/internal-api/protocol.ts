import { z } from 'zod';
import { PublishedStreamNameSchema, StreamNameSchema } from '../names.js';
import type { KeySealer } from './KeySealer.js';

/**
 * The relay protocol between nodes (internal API, see hmac.ts for auth):
 *
 *   POST   /internal/v1/relays        RelayRequest  → 201 RelayResponse
 *   DELETE /internal/v1/relays/{id}                 → 204
 *
 * The requester (an edge) opens an SRTP PipeTransport and sends its endpoint; the source
 * (origin, or an edge that already relays the stream) opens its own, connects both ways and
 * answers with its endpoint and the stream's producers as pipe-consumer RTP parameters, which
 * the requester produces with the same ids. RTP then flows source → requester, RTCP both ways.
 */

/**
 * A pipe's SRTP parameters on the wire: the key is sealed with the cluster's key (KeySealer), so
 * that reading the internal traffic does not give the media.
 */
export const SealedSrtpParametersSchema = z.object({
  cryptoSuite: z.enum([
    'AEAD_AES_256_GCM',
    'AEAD_AES_128_GCM',
    'AES_CM_128_HMAC_SHA1_80',
    'AES_CM_128_HMAC_SHA1_32',
  ]),
  sealedKey: z.string().min(1).max(512),
});
export type SealedSrtpParameters = z.infer<typeof SealedSrtpParametersSchema>;

/** SRTP parameters as mediasoup gives and takes them (its SrtpParameters), key in the clear. */
export interface OpenSrtpParameters {
  cryptoSuite: SealedSrtpParameters['cryptoSuite'];
  keyBase64: string;
}

export function sealSrtp(sealer: KeySealer, parameters: OpenSrtpParameters): SealedSrtpParameters {
  return {
    cryptoSuite: parameters.cryptoSuite,
    sealedKey: sealer.seal(parameters.keyBase64, `srtp ${parameters.cryptoSuite}`),
  };
}

/** Throws SealError when the key was not sealed with this cluster's secret. */
export function openSrtp(sealer: KeySealer, parameters: SealedSrtpParameters): OpenSrtpParameters {
  return {
    cryptoSuite: parameters.cryptoSuite,
    keyBase64: sealer.open(parameters.sealedKey, `srtp ${parameters.cryptoSuite}`),
  };
}

export const PipeEndpointSchema = z.object({
  ip: z.union([z.ipv4(), z.ipv6()]),
  port: z.number().int().min(1).max(65535),
  srtpParameters: SealedSrtpParametersSchema,
});
export type PipeEndpoint = z.infer<typeof PipeEndpointSchema>;
/** A pipe endpoint with its SRTP key in the clear: what mediasoup is given, never sent. */
export type OpenPipeEndpoint = Omit<PipeEndpoint, 'srtpParameters'> & {
  srtpParameters: OpenSrtpParameters;
};

export const RelayRequestSchema = z.object({
  stream: StreamNameSchema,
  /** Requesting node, for logs and metrics. */
  nodeId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/),
  pipe: PipeEndpointSchema,
});
export type RelayRequest = z.infer<typeof RelayRequestSchema>;

/** mediasoup validates RTP parameters itself when producing; here they only need to be objects. */
/**
 * RTP parameters as mediasoup describes them (its RtpParameters; the contract does not depend
 * on mediasoup, the media node narrows the type where it produces).
 */
export interface RtpParametersLike {
  codecs: unknown[];
  [field: string]: unknown;
}

const RtpParametersSchema = z.custom<RtpParametersLike>(
  (value) =>
    typeof value === 'object' && value !== null && Array.isArray((value as { codecs?: unknown }).codecs),
  'rtpParameters must be an object with codecs',
);

export const RelayResponseSchema = z.object({
  relayId: z.string().min(1),
  pipe: PipeEndpointSchema,
  producers: z
    .array(
      z.object({
        id: z.string().min(1),
        kind: z.enum(['audio', 'video']),
        rtpParameters: RtpParametersSchema,
        paused: z.boolean(),
      }),
    )
    .min(1)
    .max(2),
});
export type RelayResponse = z.infer<typeof RelayResponseSchema>;

export const RELAYS_PATH = '/internal/v1/relays';

/**
 * GET `${RELAYS_PATH}/{relayId}`: whether the source still serves that relay (200) or not (404
 * RELAY_NOT_FOUND). The receiving node asks when its pipe goes quiet: a quiet source that answers
 * is kept (its publisher may just be silent); one that does not is replaced at once.
 */
export const RelayStatusSchema = z.object({ relayId: z.string().min(1).max(64), stream: StreamNameSchema });
export type RelayStatus = z.infer<typeof RelayStatusSchema>;

/**
 * GET `${CLAIMS_PATH}/{stream}`: the claim this node holds on a stream (200 {stream, claimId}) or
 * 404 STREAM_NOT_LIVE. A node that finds a name claimed asks the holder before it takes the claim
 * over: a holder that refuses the connection or no longer holds that claim is gone.
 */
export const CLAIMS_PATH = '/internal/v1/claims';

export const ClaimStatusSchema = z.object({ stream: StreamNameSchema, claimId: z.string().min(1).max(64) });
export type ClaimStatus = z.infer<typeof ClaimStatusSchema>;

/** POST {stream, profile} to a transcoder: start (or join) that rendition. */
export const RENDITIONS_PATH = '/internal/v1/renditions';

export const RenditionRequestSchema = z.object({
  /** The source: a published name (a rendition of a rendition does not exist). */
  stream: PublishedStreamNameSchema,
  profile: z.string().min(1).max(64),
});

/**
 * DELETE `${SESSIONS_PATH}/{protocol}/{stream}/{sessionId}`: end a WHIP or WHEP session the called
 * node holds — a player's DELETE that the load balancer (a Service, an Ingress) routed to another
 * node of the CDN is passed on to the holder. 200, 404 SESSION_NOT_FOUND, or 410 SESSION_ENDED.
 */
export const SESSIONS_PATH = '/internal/v1/sessions';

export function sessionPath(protocol: 'whip' | 'whep', stream: string, sessionId: string): string {
  return `${SESSIONS_PATH}/${protocol}/${encodeURIComponent(stream)}/${encodeURIComponent(sessionId)}`;
}

/** POST {draining} to an edge: the operator scaling edges down (or cancelling that). */
export const DRAIN_PATH = '/internal/v1/drain';

export const DrainRequestSchema = z.object({
  draining: z.boolean(),
  /**
   * How long the edge keeps its viewers before ending their sessions (`node-draining`); the
   * node's DRAIN_DEADLINE_MS when absent. Counted from this call (a repeated call restarts it).
   */
  deadlineMs: z.number().int().min(0).max(86_400_000).optional(),
});

/**
 * GET `${HLS_PATH}/{stream}/{variant}/{file}?t=…[&_HLS_msn=…[&_HLS_part=…]]&ip=…`: an HLS media
 * playlist, init section, part or segment, served by the edge whose packager the player's
 * signed URL names — a request the load balancer sent to another edge is passed on. The holder
 * checks the signed URL and the grant as its public route does (`ip`: the player's address, for
 * the ACL) and answers as that route would: the bytes, or the error.
 */
export const HLS_PATH = '/internal/v1/hls';

export interface HlsForwardQuery {
  token: string;
  clientIp: string;
  msn?: number | undefined;
  part?: number | undefined;
}

export function hlsPath(stream: string, variant: string, file: string, query: HlsForwardQuery): string {
  const params = new URLSearchParams({ t: query.token });
  if (query.msn !== undefined) params.set('_HLS_msn', String(query.msn));
  if (query.part !== undefined) params.set('_HLS_part', String(query.part));
  params.set('ip', query.clientIp);
  const segment = encodeURIComponent;
  return `${HLS_PATH}/${segment(stream)}/${segment(variant)}/${segment(file)}?${params.toString()}`;
}
