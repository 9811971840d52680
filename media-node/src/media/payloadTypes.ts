import type { types } from 'mediasoup';
import { RtccdnError } from '../../contract/errors.js';
import type { OfferCodec, OfferMedia } from '../sdp/offer.js';
import { codecMatches, isRtx } from '../sdp/translate.js';

/**
 * Payload-type numbering of routers.
 *
 * A WHEP viewer is the SDP offerer, so it decides which payload type (PT) means which codec
 * on its receive side. A mediasoup Consumer sends with the PTs of its Router, and mediasoup
 * cannot renumber per consumer (versatica/mediasoup#1126). So a viewer must consume from a
 * router whose numbering matches its offer. Viewers that number like libwebrtc (Chrome,
 * Edge, Safari, OBS, GStreamer's webrtcbin mostly) use the stream's default routers; any other
 * numbering gets a router of its own per worker ("plan"), fed by pipeToRouter like any
 * fan-out router. Viewers with the same numbering share it.
 *
 * mediasoup gives a video codec's RTX the first free PT of a fixed dynamic list
 * (ortc.ts DynamicPayloadTypes). To make it equal the viewer's RTX PT, the PTs that come
 * before it in that list are reserved with placeholder codecs no stream ever carries. The
 * result is checked against the created router (rtxPayloadTypeOf) and RTX is only used
 * when it really matches, so a change in mediasoup's allocation degrades to "no RTX", not
 * to a broken stream.
 */

/** mediasoup's dynamic PT allocation order (mediasoup 3.19 node/src/ortc.ts). */
const MEDIASOUP_DYNAMIC_PAYLOAD_TYPES = [
  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120,
  121, 122, 123, 124, 125, 126, 127, 96, 97, 98, 99,
];

/** Never produced (WHIP only accepts Opus, VP8, H.264): safe to occupy PTs with. */
function placeholder(payloadType: number): types.RouterRtpCodecCapability {
  return { kind: 'audio', mimeType: 'audio/PCMU', clockRate: 8000, preferredPayloadType: payloadType };
}

/** One codec of a router with the PTs it must have. */
export interface PlannedCodec {
  codec: Omit<types.RouterRtpCodecCapability, 'preferredPayloadType'>;
  payloadType: number;
  /** Wanted PT of the codec's RTX (video only); undefined = whatever mediasoup picks. */
  rtxPayloadType?: number;
}

/**
 * mediaCodecs for createRouter() that give `planned` codecs their PTs (and, where
 * possible, their RTX PTs), followed by `extra` codecs numbered by mediasoup.
 */
export function routerMediaCodecs(
  planned: PlannedCodec[],
  extra: types.RouterRtpCodecCapability[] = [],
): types.RouterRtpCodecCapability[] {
  const taken = new Set<number>();
  for (const { payloadType, rtxPayloadType } of planned) {
    taken.add(payloadType);
    if (rtxPayloadType !== undefined) taken.add(rtxPayloadType);
  }
  const remaining = [...MEDIASOUP_DYNAMIC_PAYLOAD_TYPES];
  const take = (payloadType: number) => {
    const index = remaining.indexOf(payloadType);
    if (index >= 0) remaining.splice(index, 1);
  };
  const result: types.RouterRtpCodecCapability[] = [];
  // Audio first: it takes no RTX, so its PTs are out of the way before any RTX is allocated.
  const ordered = [...planned].sort(
    (a, b) => Number(a.codec.kind === 'video') - Number(b.codec.kind === 'video'),
  );
  for (const { codec, payloadType, rtxPayloadType } of ordered) {
    take(payloadType);
    if (codec.kind === 'video' && rtxPayloadType !== undefined && remaining.includes(rtxPayloadType)) {
      // Occupy every free PT mediasoup would hand out before the wanted RTX PT.
      for (const before of remaining.slice(0, remaining.indexOf(rtxPayloadType))) {
        if (taken.has(before)) break; // needed by another planned codec: RTX will not match
        result.push(placeholder(before));
        take(before);
      }
    }
    result.push({ ...codec, preferredPayloadType: payloadType });
    if (codec.kind === 'video') remaining.shift(); // mediasoup gives this codec's RTX the next one
  }
  return [...result, ...extra];
}

/** The PT of the RTX that `payloadType` has in `capabilities`, if any. */
export function rtxPayloadTypeOf(
  capabilities: types.RtpCapabilities,
  payloadType: number,
): number | undefined {
  return capabilities.codecs?.find((codec) => isRtx(codec) && codec.parameters?.['apt'] === payloadType)
    ?.preferredPayloadType;
}

/** How a viewer receives one of the stream's producers. */
export interface ViewerTrack {
  media: OfferMedia;
  producer: types.Producer;
  /** The viewer's PT for the producer's codec, and for its RTX (if it offered one). */
  payloadType: number;
  rtxPayloadType?: number;
}

/** The numbering one viewer needs: routers with equal keys serve viewers alike. */
export interface ViewerPlan {
  key: string;
  tracks: ViewerTrack[];
  planned: PlannedCodec[];
}

export const DEFAULT_PLAN_KEY = 'default';

/**
 * Matches a viewer's receivable m-sections to the stream's producers (first free producer of
 * the section's kind whose codec the section offers). Throws 422 when nothing matches.
 * `defaultCapabilities` are the stream's default routers' capabilities: a viewer that numbers
 * like them gets DEFAULT_PLAN_KEY.
 */
export function planViewer(
  receivable: OfferMedia[],
  producers: readonly types.Producer[],
  defaultCapabilities: types.RtpCapabilities,
): ViewerPlan {
  const tracks: ViewerTrack[] = [];
  const used = new Set<types.Producer>();
  for (const media of receivable) {
    for (const producer of producers) {
      if (used.has(producer) || producer.kind !== media.type) continue;
      const producerCodec = producer.rtpParameters.codecs.find((codec) => !isRtx(codec));
      const offered =
        producerCodec && media.codecs.find((codec) => !isRtx(codec) && codecMatches(codec, producerCodec));
      if (!offered) continue;
      used.add(producer);
      tracks.push({
        media,
        producer,
        payloadType: offered.payloadType,
        rtxPayloadType: rtxFor(media, offered),
      });
      break;
    }
  }
  if (tracks.length === 0) {
    const sent = producers.map((producer) => producer.rtpParameters.codecs[0]?.mimeType).join(', ');
    throw new RtccdnError(
      'NO_SUPPORTED_CODEC',
      `the offer accepts none of the stream's codecs (the stream sends ${sent})`,
    );
  }
  const planned: PlannedCodec[] = tracks.map((track) => {
    const source = track.producer.rtpParameters.codecs.find((codec) => !isRtx(codec))!;
    return {
      codec: {
        kind: track.producer.kind,
        mimeType: source.mimeType,
        clockRate: source.clockRate,
        ...(source.channels !== undefined ? { channels: source.channels } : {}),
        parameters: source.parameters ?? {},
      },
      payloadType: track.payloadType,
      ...(track.rtxPayloadType !== undefined ? { rtxPayloadType: track.rtxPayloadType } : {}),
    };
  });
  const numberedLikeDefault = tracks.every((track) => {
    const consumable = track.producer.consumableRtpParameters.codecs;
    const mediaCodec = consumable.find((codec) => !isRtx(codec));
    if (mediaCodec?.payloadType !== track.payloadType) return false;
    return (
      track.rtxPayloadType === undefined ||
      rtxPayloadTypeOf(defaultCapabilities, mediaCodec.payloadType) === track.rtxPayloadType
    );
  });
  const key = numberedLikeDefault
    ? DEFAULT_PLAN_KEY
    : planned
        .map(
          ({ codec, payloadType, rtxPayloadType }) =>
            `${codec.mimeType}${codec.kind === 'video' ? `;${JSON.stringify(codec.parameters ?? {})}` : ''}=${payloadType}/${rtxPayloadType ?? '-'}`,
        )
        .sort()
        .join(',');
  return { key, tracks, planned };
}

function rtxFor(media: OfferMedia, codec: OfferCodec): number | undefined {
  return media.codecs.find(
    (candidate) => isRtx(candidate) && Number(candidate.parameters['apt']) === codec.payloadType,
  )?.payloadType;
}
