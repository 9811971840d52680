import { isSameProfile } from 'h264-profile-level-id';
import type { types } from 'mediasoup';
import { RtccdnError } from '../../contract/errors.js';
import type { OfferMedia } from './offer.js';

/**
 * Translation between SDP m-sections and mediasoup's ORTC-style RTP parameters. The client is
 * always the offerer (WHIP and WHEP); the node answers.
 */

const SUPPORTED_FEEDBACK = new Set(['nack', 'nack pli', 'ccm fir', 'goog-remb', 'transport-cc']);

export function isRtx(codec: { mimeType: string }): boolean {
  return /\/rtx$/i.test(codec.mimeType);
}

function packetizationMode(parameters: Record<string, unknown> | undefined): number {
  return Number(parameters?.['packetization-mode'] ?? 0);
}

/** Same codec for media purposes: name, clock rate, channels; for H.264 also mode and profile. */
export function codecMatches(
  offered: Pick<types.RtpCodecCapability, 'mimeType' | 'clockRate' | 'channels' | 'parameters'>,
  capability: Pick<types.RtpCodecCapability, 'mimeType' | 'clockRate' | 'channels' | 'parameters'>,
): boolean {
  const mime = offered.mimeType.toLowerCase();
  if (mime !== capability.mimeType.toLowerCase()) return false;
  if (offered.clockRate !== capability.clockRate) return false;
  if (mime.startsWith('audio/') && (offered.channels ?? 1) !== (capability.channels ?? 1)) return false;
  if (mime === 'video/h264') {
    if (packetizationMode(offered.parameters) !== packetizationMode(capability.parameters)) return false;
    if (!isSameProfile(offered.parameters, capability.parameters)) return false;
  }
  return true;
}

/**
 * RTP parameters for a Producer from a publisher's (sendonly) m-section: the first offered codec
 * the router supports, its RTX, the offered header extensions mediasoup understands, and the
 * offered SSRCs. Returns undefined when no offered codec is supported.
 */
export function producerRtpParameters(
  media: OfferMedia,
  routerCapabilities: types.RtpCapabilities,
): types.RtpParameters | undefined {
  const kind = media.type as types.MediaKind;
  const routerCodecs = (routerCapabilities.codecs ?? []).filter(
    (codec) => codec.kind === kind && !isRtx(codec),
  );
  const chosen = media.codecs.find(
    (codec) => !isRtx(codec) && routerCodecs.some((capability) => codecMatches(codec, capability)),
  );
  if (!chosen) return undefined;
  const rtx = media.codecs.find(
    (codec) => isRtx(codec) && Number(codec.parameters['apt']) === chosen.payloadType,
  );
  const codecs: types.RtpCodecParameters[] = [
    {
      mimeType: chosen.mimeType,
      payloadType: chosen.payloadType,
      clockRate: chosen.clockRate,
      ...(chosen.channels !== undefined && kind === 'audio' ? { channels: chosen.channels } : {}),
      parameters: chosen.parameters,
      rtcpFeedback: chosen.rtcpFeedback.filter((fb) =>
        SUPPORTED_FEEDBACK.has(`${fb.type} ${fb.parameter}`.trim()),
      ),
    },
  ];
  if (rtx) {
    codecs.push({
      mimeType: `${kind}/rtx`,
      payloadType: rtx.payloadType,
      clockRate: rtx.clockRate,
      parameters: { apt: chosen.payloadType },
      rtcpFeedback: [],
    });
  }
  const supportedUris = new Set(
    (routerCapabilities.headerExtensions ?? [])
      .filter((ext) => ext.kind === kind && ext.direction !== 'sendonly' && ext.direction !== 'inactive')
      .map((ext) => ext.uri),
  );
  const headerExtensions = media.headerExtensions
    .filter((ext) => supportedUris.has(ext.uri as types.RtpHeaderExtensionUri))
    .map((ext) => ({ uri: ext.uri as types.RtpHeaderExtensionUri, id: ext.id }));

  return {
    mid: media.mid,
    codecs,
    headerExtensions,
    encodings: producerEncodings(media, headerExtensions, rtx !== undefined),
    rtcp: { ...(media.cname !== undefined ? { cname: media.cname } : {}), reducedSize: media.reducedSize },
  };
}

const RID_EXTENSION = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
/** Each simulcast layer's temporal scalability, as mediasoup-client declares for browsers. */
export const SIMULCAST_SCALABILITY_MODE = 'L1T3';

/**
 * The encodings a producer receives: one per simulcast layer (lowest first), else the single
 * offered (or still unknown) SSRC. RID layers need the rtp-stream-id header extension: without
 * it mediasoup could not tell the layers apart.
 */
function producerEncodings(
  media: OfferMedia,
  headerExtensions: types.RtpHeaderExtensionParameters[],
  hasRtx: boolean,
): types.RtpEncodingParameters[] {
  const layers = media.simulcast?.layers;
  if (!layers) {
    const encoding: types.RtpEncodingParameters = {};
    if (media.ssrc !== undefined) encoding.ssrc = media.ssrc;
    if (media.ssrc !== undefined && media.rtxSsrc !== undefined && hasRtx)
      encoding.rtx = { ssrc: media.rtxSsrc };
    return [encoding];
  }
  if (
    layers.some((layer) => layer.rid !== undefined) &&
    !headerExtensions.some((ext) => ext.uri === RID_EXTENSION)
  ) {
    throw new RtccdnError(
      'INVALID_SDP',
      `media section "${media.mid}" offers RID simulcast without the ${RID_EXTENSION} header extension`,
    );
  }
  return layers.map((layer) => ({
    // Browsers send VP8 simulcast layers with three temporal layers (libwebrtc's default), and
    // SDP does not say so. Declared as one, mediasoup forwards only temporal layer 0 to a viewer:
    // a quarter of the frames. Declaring three costs nothing for a layer that has fewer.
    scalabilityMode: SIMULCAST_SCALABILITY_MODE,
    ...(layer.rid !== undefined ? { rid: layer.rid } : {}),
    ...(layer.ssrc !== undefined ? { ssrc: layer.ssrc } : {}),
    ...(layer.ssrc !== undefined && layer.rtxSsrc !== undefined && hasRtx
      ? { rtx: { ssrc: layer.rtxSsrc } }
      : {}),
  }));
}

/** What a viewer can receive, read from its (recvonly) m-section, in mediasoup's terms. */
export function viewerRtpCapabilities(media: OfferMedia): types.RtpCapabilities {
  const kind = media.type as types.MediaKind;
  return {
    codecs: media.codecs
      .filter((codec) => codec.clockRate > 0 && (!isRtx(codec) || codec.parameters['apt'] !== undefined))
      .map((codec) => ({
        kind,
        mimeType: codec.mimeType,
        preferredPayloadType: codec.payloadType,
        clockRate: codec.clockRate,
        ...(kind === 'audio' ? { channels: codec.channels ?? 1 } : {}),
        parameters: codec.parameters,
        rtcpFeedback: codec.rtcpFeedback,
      })),
    headerExtensions: media.headerExtensions.map((ext) => ({
      kind,
      uri: ext.uri as types.RtpHeaderExtensionUri,
      preferredId: ext.id,
      direction: 'sendrecv' as const,
    })),
  };
}
