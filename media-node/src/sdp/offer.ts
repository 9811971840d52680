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
  raw: MediaDescription;
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
