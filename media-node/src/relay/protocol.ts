import type { types } from 'mediasoup';
import { z } from 'zod';
import { StreamNameSchema } from '../http/names.js';

/**
 * The relay protocol between nodes (internal API, see internal/hmac.ts for auth):
 *
 *   POST   /internal/v1/relays        RelayRequest  → 201 RelayResponse
 *   DELETE /internal/v1/relays/{id}                 → 204
 *
 * The requester (an edge) opens an SRTP PipeTransport and sends its endpoint; the source
 * (origin, or an edge that already relays the stream) opens its own, connects both ways and
 * answers with its endpoint and the stream's producers as pipe-consumer RTP parameters, which
 * the requester produces with the same ids. RTP then flows source → requester, RTCP both ways.
 */

export const SrtpParametersSchema = z.object({
  cryptoSuite: z.enum([
    'AEAD_AES_256_GCM',
    'AEAD_AES_128_GCM',
    'AES_CM_128_HMAC_SHA1_80',
    'AES_CM_128_HMAC_SHA1_32',
  ]),
  keyBase64: z.string().min(1),
});

export const PipeEndpointSchema = z.object({
  ip: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  srtpParameters: SrtpParametersSchema,
});
export type PipeEndpoint = z.infer<typeof PipeEndpointSchema>;

export const RelayRequestSchema = z.object({
  stream: StreamNameSchema,
  /** Requesting node, for logs and metrics. */
  nodeId: z.string().min(1).max(128),
  pipe: PipeEndpointSchema,
});
export type RelayRequest = z.infer<typeof RelayRequestSchema>;

/** mediasoup validates RTP parameters itself when producing; here they only need to be objects. */
const RtpParametersSchema = z.custom<types.RtpParameters>(
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
    .min(1),
});
export type RelayResponse = z.infer<typeof RelayResponseSchema>;

export const RELAYS_PATH = '/internal/v1/relays';

/** POST {stream, profile} to a transcoder: start (or join) that rendition. */
export const RENDITIONS_PATH = '/internal/v1/renditions';

export const RenditionRequestSchema = z.object({
  stream: StreamNameSchema,
  profile: z.string().min(1).max(64),
});
