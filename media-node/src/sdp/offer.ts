import type { types } from 'mediasoup';
import type { MediaAttributes, MediaDescription, SessionDescription } from 'sdp-transform';
import * as sdpTransform from 'sdp-transform';
import { RtccdnError } from '../../contract/errors.js';

const FINGERPRINT_ALGORITHMS = ['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512'] as const;

/** What the node needs from a client's SDP offer, normalized (session-level values resolved). */
export interface ParsedOffer {
  iceUfrag: string;
  icePwd: string;
  fingerprint: types.DtlsFingerprint;
  /** DTLS role the offerer asked for. */
  setup: 'actpass' | 'active' | 'passive';
  media: OfferMedia[];
}

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface OfferMedia {
  /** Position in the offer; the answer must keep the same m-line order. */
  index: number;
  mid: string;
  type: string;
  protocol: string;
  direction: Direction;
  codecs: OfferCodec[];
  headerExtensions: { uri: string; id: number }[];
  /** Primary SSRC and its RTX SSRC, if the offerer signalled them. */
  ssrc?: number;
  rtxSsrc?: number;
  cname?: string;
  reducedSize: boolean;
  /** Simulcast the offerer sends on this (video) section, if any. */
  simulcast?: OfferSimulcast;
  raw: MediaDescription;
}

/** One simulcast layer (encoding) of a publisher's video: by RID, or by SSRC (legacy SIM group). */
export interface SimulcastLayer {
  rid?: string;
  ssrc?: number;
  rtxSsrc?: number;
}

export interface OfferSimulcast {
  /** Lowest resolution first: mediasoup numbers spatial layers by encoding index. */
  layers: SimulcastLayer[];
  /** The RIDs as the offer's a=simulcast listed them (the answer mirrors them); empty for SIM. */
  offeredRids: string[];
}

export interface OfferCodec {
  payloadType: number;
  /** `kind/name` as mediasoup spells it, e.g. `video/VP8`, `audio/opus`, `video/rtx`. */
  mimeType: string;
  clockRate: number;
  channels?: number;
  parameters: Record<string, string | number>;
  rtcpFeedback: { type: string; parameter: string }[];
}

/** A stream is one audio and one video track: offers with more sections are refused. */
export const MAX_MEDIA_SECTIONS = 2;

/** Browsers send up to 3 simulcast layers, OBS up to 4; each layer costs fan-out and relay. */
export const MAX_SIMULCAST_LAYERS = 4;

/** Parses and validates an offer. Throws RtccdnError INVALID_SDP with a reason on anything unusable. */
export function parseOffer(text: string): ParsedOffer {
  if (!/^v=0\r?\n/.test(text))
    throw new RtccdnError('INVALID_SDP', 'body is not an SDP offer (must start with "v=0")');
  let session: SessionDescription;
  try {
    session = sdpTransform.parse(text);
  } catch (error) {
    throw new RtccdnError('INVALID_SDP', `malformed SDP: ${(error as Error).message}`);
  }
  if (!Array.isArray(session.media) || session.media.length === 0) {
    throw new RtccdnError('INVALID_SDP', 'SDP offer has no media sections');
  }
  if (session.media.length > MAX_MEDIA_SECTIONS) {
    throw new RtccdnError(
      'INVALID_SDP',
      `SDP offer has ${session.media.length} media sections; at most ${MAX_MEDIA_SECTIONS} are accepted (one audio, one video)`,
    );
  }

  const media = session.media.map((section, index) => parseMedia(section, index, session));
  const mids = new Set<string>();
  for (const section of media) {
    if (mids.has(section.mid)) throw new RtccdnError('INVALID_SDP', `duplicate a=mid "${section.mid}"`);
    mids.add(section.mid);
  }

  const first = session.media[0]!;
  const iceUfrag = first.iceUfrag ?? session.iceUfrag;
  const icePwd = first.icePwd ?? session.icePwd;
  if (!iceUfrag || !icePwd) throw new RtccdnError('INVALID_SDP', 'SDP offer lacks a=ice-ufrag / a=ice-pwd');
  const fingerprint = first.fingerprint ?? session.fingerprint;
  if (!fingerprint?.type || !fingerprint.hash)
    throw new RtccdnError('INVALID_SDP', 'SDP offer lacks a=fingerprint');
  const algorithm = fingerprint.type.toLowerCase() as types.FingerprintAlgorithm;
  if (!FINGERPRINT_ALGORITHMS.includes(algorithm as (typeof FINGERPRINT_ALGORITHMS)[number])) {
    throw new RtccdnError('INVALID_SDP', `unsupported fingerprint algorithm "${fingerprint.type}"`);
  }
  const setup = first.setup ?? (session as { setup?: string }).setup ?? 'actpass';
  if (setup !== 'actpass' && setup !== 'active' && setup !== 'passive') {
    throw new RtccdnError('INVALID_SDP', `unsupported a=setup:${setup}`);
  }

  if (media.length > 1) {
    const bundle = session.groups?.find((group) => group.type === 'BUNDLE');
    // sdp-transform yields a number for a single numeric mid.
    const bundled = new Set(String(bundle?.mids ?? '').split(/\s+/));
    const active = media.filter((section) => section.raw.port !== 0);
    if (!active.every((section) => bundled.has(section.mid))) {
      throw new RtccdnError('INVALID_SDP', 'SDP offer must BUNDLE all media sections (a=group:BUNDLE)');
    }
  }

  return {
    iceUfrag,
    icePwd,
    fingerprint: { algorithm, value: fingerprint.hash },
    setup,
    media,
  };
}

function parseMedia(section: MediaDescription, index: number, session: SessionDescription): OfferMedia {
  const mid = section.mid === undefined ? undefined : String(section.mid);
  if (mid === undefined || mid === '')
    throw new RtccdnError('INVALID_SDP', `media section ${index} lacks a=mid`);
  const direction = (section.direction ??
    (session as { direction?: Direction }).direction ??
    'sendrecv') as Direction;
  if (!section.rtcpMux && section.port !== 0 && (section.type === 'audio' || section.type === 'video')) {
    throw new RtccdnError('INVALID_SDP', `media section "${mid}" lacks a=rtcp-mux (required)`);
  }

  const codecs: OfferCodec[] = [];
  for (const rtp of section.rtp ?? []) {
    const fmtp = section.fmtp?.find((entry) => entry.payload === rtp.payload);
    const parameters = fmtp
      ? normalizeParameters(sdpTransform.parseParams(fmtp.config) as Record<string, string | number>)
      : {};
    const rtcpFeedback = (section.rtcpFb ?? [])
      .filter((fb) => String(fb.payload) === String(rtp.payload) || fb.payload === '*')
      .map((fb) => ({ type: fb.type, parameter: fb.subtype ?? '' }));
    const channels = rtp.encoding === undefined ? undefined : Number(rtp.encoding);
    codecs.push({
      payloadType: rtp.payload,
      mimeType: `${section.type}/${rtp.codec}`,
      clockRate: rtp.rate ?? 0,
      ...(channels !== undefined && Number.isFinite(channels) ? { channels } : {}),
      parameters,
      rtcpFeedback,
    });
  }

  const headerExtensions = (section.ext ?? []).map((ext) => ({ uri: ext.uri, id: ext.value }));
  const { ssrc, rtxSsrc, cname } = primarySsrc(section);
  const simulcast = parseSimulcast(section, mid);
  return {
    index,
    mid,
    type: section.type,
    protocol: section.protocol,
    direction,
    codecs,
    headerExtensions,
    ...(ssrc !== undefined ? { ssrc } : {}),
    ...(rtxSsrc !== undefined ? { rtxSsrc } : {}),
    ...(cname !== undefined ? { cname } : {}),
    reducedSize: Boolean((section as MediaAttributes).rtcpRsize),
    ...(simulcast ? { simulcast } : {}),
    raw: section,
  };
}

/** sdp-transform returns numbers for numeric-looking values; profile-level-id must stay a string. */
function normalizeParameters(params: Record<string, string | number>): Record<string, string | number> {
  const result: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(params)) {
    result[key] = key === 'profile-level-id' ? String(value).padStart(6, '0') : value;
  }
  return result;
}

function primarySsrc(section: MediaDescription): { ssrc?: number; rtxSsrc?: number; cname?: string } {
  const fid = section.ssrcGroups?.find((group) => group.semantics === 'FID');
  let ssrc: number | undefined;
  let rtxSsrc: number | undefined;
  if (fid) {
    const [primary, rtx] = fid.ssrcs.split(/\s+/).map(Number);
    ssrc = primary;
    rtxSsrc = rtx;
  } else if (section.ssrcs && section.ssrcs.length > 0) {
    ssrc = Number(section.ssrcs[0]!.id);
  }
  const cname = section.ssrcs?.find((line) => Number(line.id) === ssrc && line.attribute === 'cname')?.value;
  return {
    ...(ssrc !== undefined && Number.isFinite(ssrc) ? { ssrc } : {}),
    ...(rtxSsrc !== undefined && Number.isFinite(rtxSsrc) ? { rtxSsrc } : {}),
    ...(cname !== undefined ? { cname } : {}),
  };
}

/**
 * RID names whose meaning is known, lowest resolution first: Chromium apps' q/h/f, and the usual
 * l/m/h and low/mid/high spellings. Other RIDs keep the order of a=simulcast unless the a=rid
 * lines restrict max-width/max-height, which then orders them.
 */
const KNOWN_RID_ORDERS = [
  ['q', 'h', 'f'],
  ['l', 'm', 'h'],
  ['low', 'mid', 'high'],
  ['low', 'medium', 'high'],
];

/**
 * The simulcast layers a section offers to send: RFC 8853 (a=rid … send + a=simulcast:send,
 * as browsers and OBS 31+ offer) or the legacy a=ssrc-group:SIM. Throws INVALID_SDP on an
 * inconsistent or oversized offer; returns undefined for a single-encoding section.
 */
function parseSimulcast(section: MediaDescription, mid: string): OfferSimulcast | undefined {
  if (section.simulcast) {
    if (section.type !== 'video')
      throw new RtccdnError('INVALID_SDP', `media section "${mid}": simulcast is only accepted for video`);
    if (section.simulcast.dir1 !== 'send' || section.simulcast.dir2 !== undefined) {
      throw new RtccdnError('INVALID_SDP', `media section "${mid}": only a=simulcast:send is accepted`);
    }
    // "a;b,c": ';' separates streams, ',' alternatives (the first is used); '~' marks a paused one.
    const offeredRids = String(section.simulcast.list1)
      .split(';')
      .map((stream) => stream.split(',')[0]!.replace(/^~/, '').trim())
      .filter((rid) => rid !== '');
    const declared = new Map((section.rids ?? []).map((rid) => [String(rid.id), rid]));
    for (const rid of offeredRids) {
      const line = declared.get(rid);
      if (line?.direction !== 'send') {
        throw new RtccdnError(
          'INVALID_SDP',
          `media section "${mid}": a=simulcast names rid "${rid}" without a=rid:${rid} send`,
        );
      }
    }
    if (new Set(offeredRids).size !== offeredRids.length)
      throw new RtccdnError('INVALID_SDP', `media section "${mid}": a=simulcast repeats a rid`);
    if (offeredRids.length > MAX_SIMULCAST_LAYERS) {
      throw new RtccdnError(
        'INVALID_SDP',
        `media section "${mid}" offers ${offeredRids.length} simulcast layers; at most ${MAX_SIMULCAST_LAYERS} are accepted`,
      );
    }
    if (offeredRids.length < 2) return undefined;
    const sizes = new Map(offeredRids.map((rid) => [rid, ridPixels(declared.get(rid)?.params)]));
    const known = KNOWN_RID_ORDERS.find((order) =>
      offeredRids.every((rid) => order.includes(rid.toLowerCase())),
    );
    const ordered = [...offeredRids];
    if (offeredRids.every((rid) => sizes.get(rid) !== undefined)) {
      ordered.sort((a, b) => sizes.get(a)! - sizes.get(b)!);
    } else if (known) {
      ordered.sort((a, b) => known.indexOf(a.toLowerCase()) - known.indexOf(b.toLowerCase()));
    }
    return { layers: ordered.map((rid) => ({ rid })), offeredRids };
  }
  const sim = section.ssrcGroups?.find((group) => group.semantics === 'SIM');
  if (!sim) return undefined;
  if (section.type !== 'video')
    throw new RtccdnError('INVALID_SDP', `media section "${mid}": simulcast is only accepted for video`);
  const ssrcs = sim.ssrcs.split(/\s+/).map(Number);
  if (ssrcs.some((ssrc) => !Number.isInteger(ssrc) || ssrc <= 0 || ssrc > 0xffffffff))
    throw new RtccdnError('INVALID_SDP', `media section "${mid}": invalid a=ssrc-group:SIM ${sim.ssrcs}`);
  if (new Set(ssrcs).size !== ssrcs.length)
    throw new RtccdnError('INVALID_SDP', `media section "${mid}": a=ssrc-group:SIM repeats an SSRC`);
  if (ssrcs.length > MAX_SIMULCAST_LAYERS) {
    throw new RtccdnError(
      'INVALID_SDP',
      `media section "${mid}" offers ${ssrcs.length} simulcast layers; at most ${MAX_SIMULCAST_LAYERS} are accepted`,
    );
  }
  if (ssrcs.length < 2) return undefined;
  const fids = (section.ssrcGroups ?? [])
    .filter((group) => group.semantics === 'FID')
    .map((group) => group.ssrcs.split(/\s+/).map(Number));
  // libwebrtc lists SIM SSRCs lowest resolution first.
  const layers = ssrcs.map((ssrc) => {
    const rtxSsrc = fids.find(([primary]) => primary === ssrc)?.[1];
    return { ssrc, ...(rtxSsrc !== undefined && Number.isFinite(rtxSsrc) ? { rtxSsrc } : {}) };
  });
  return { layers, offeredRids: [] };
}

/** max-width × max-height of an a=rid line's restrictions, if it has both. */
function ridPixels(params: string | undefined): number | undefined {
  if (!params) return undefined;
  const values = new Map(
    params.split(';').map((pair) => {
      const [key = '', value = ''] = pair.split('=');
      return [key.trim(), Number(value)] as const;
    }),
  );
  const width = values.get('max-width');
  const height = values.get('max-height');
  return width !== undefined && height !== undefined && width > 0 && height > 0 ? width * height : undefined;
}
