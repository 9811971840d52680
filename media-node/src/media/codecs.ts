import type { types } from 'mediasoup';
import * as mediasoup from 'mediasoup';
import { codecMatches } from '../sdp/translate.js';
import type { PlannedCodec } from './payloadTypes.js';

/**
 * The codecs publishers may send. The H.264 entries cover the profiles browsers and OBS
 * actually offer (constrained baseline, main, high), packetization-mode 1.
 */
export const PUBLISHABLE_CODECS: types.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  ...['42e01f', '4d001f', '64001f'].map(
    (profileLevelId): types.RouterRtpCodecCapability => ({
      kind: 'video',
      mimeType: 'video/H264',
      clockRate: 90000,
      parameters: {
        'packetization-mode': 1,
        'profile-level-id': profileLevelId,
        'level-asymmetry-allowed': 1,
      },
    }),
  ),
];

/**
 * What a publisher's offer is matched against (before any router exists): the publishable
 * codecs plus the header extensions mediasoup understands.
 */
export const PUBLISH_CAPABILITIES: types.RtpCapabilities = {
  codecs: PUBLISHABLE_CODECS.map((codec, index) => ({ ...codec, preferredPayloadType: 100 + index })),
  headerExtensions: mediasoup.getSupportedRtpCapabilities().headerExtensions ?? [],
};

/**
 * How libwebrtc (Chrome, Edge, Safari) numbers these codecs in its offers. A stream's routers
 * use this numbering, so most browser viewers consume without a numbering router of their own.
 */
const LIBWEBRTC_PAYLOAD_TYPES: {
  codec: PlannedCodec['codec'];
  payloadType: number;
  rtxPayloadType?: number;
}[] = [
  { codec: PUBLISHABLE_CODECS[0]!, payloadType: 111 },
  { codec: PUBLISHABLE_CODECS[1]!, payloadType: 96, rtxPayloadType: 97 },
  { codec: PUBLISHABLE_CODECS[2]!, payloadType: 106, rtxPayloadType: 107 },
  { codec: PUBLISHABLE_CODECS[3]!, payloadType: 127, rtxPayloadType: 125 },
  { codec: PUBLISHABLE_CODECS[4]!, payloadType: 112, rtxPayloadType: 113 },
];

/** The stream router's numbering for a codec a publisher sends. */
export function defaultNumbering(codec: types.RtpCodecParameters): PlannedCodec {
  const known = LIBWEBRTC_PAYLOAD_TYPES.find((entry) => codecMatches(codec, entry.codec));
  const routerCodec = {
    kind: (codec.mimeType.split('/')[0] ?? 'video') as types.MediaKind,
    mimeType: codec.mimeType,
    clockRate: codec.clockRate,
    ...(codec.channels !== undefined ? { channels: codec.channels } : {}),
    parameters: codec.parameters ?? {},
  };
  // An unknown numbering keeps the publisher's own PT: any PT works, this one is free of clashes.
  return known
    ? { codec: routerCodec, payloadType: known.payloadType, rtxPayloadType: known.rtxPayloadType }
    : { codec: routerCodec, payloadType: codec.payloadType };
}

/**
 * A router codec as the RTP parameters of media fed to the router from inside the node
 * (FFmpeg's output, a stable producer): its preferred payload type, no RTCP feedback to negotiate.
 */
export function internalCodecParameters(capability: types.RtpCodecCapability): types.RtpCodecParameters {
  return {
    mimeType: capability.mimeType,
    payloadType: capability.preferredPayloadType!,
    clockRate: capability.clockRate,
    parameters: capability.parameters ?? {},
    rtcpFeedback: [],
  };
}

/** Human-readable list for error messages ("no supported codec; supported: …"). */
export const SUPPORTED_CODECS_TEXT = 'audio Opus; video VP8 or H.264 (packetization-mode=1)';
