import type { types } from 'mediasoup';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import * as sdpTransform from 'sdp-transform';
import type { Direction, OfferMedia, ParsedOffer } from './offer.js';

/** One m-section of the answer: either accepted with the RTP parameters in use, or rejected. */
export interface AnswerSection {
  media: OfferMedia;
  accepted?: {
    direction: Direction;
    rtpParameters: types.RtpParameters;
    /** Signal SSRCs and msid (the node is the sender: WHEP). */
    sender?: { streamId: string; trackId: string };
    /** RIDs the node receives as simulcast (WHIP): answered with a=rid … recv and a=simulcast:recv. */
    simulcastRids?: string[];
  };
}

export interface AnswerInput {
  offer: ParsedOffer;
  iceParameters: types.IceParameters;
  iceCandidates: types.IceCandidate[];
  dtlsParameters: types.DtlsParameters;
  /** Our DTLS role: passive when the offerer is actpass/active. */
  setup: 'active' | 'passive';
  sections: AnswerSection[];
}

/** DTLS role the node takes, and the role to tell mediasoup the remote has. */
export function negotiateDtlsRole(offerSetup: ParsedOffer['setup']): {
  localSetup: 'active' | 'passive';
  remoteRole: types.DtlsRole;
} {
  return offerSetup === 'passive'
    ? { localSetup: 'active', remoteRole: 'server' }
    : { localSetup: 'passive', remoteRole: 'client' };
}

let sessionVersionSeed = Date.now();

/** Builds an ICE-lite, BUNDLEd SDP answer with m-sections in offer order. */
export function buildAnswer(input: AnswerInput): string {
  const fingerprint =
    input.dtlsParameters.fingerprints.find((fp) => fp.algorithm === 'sha-256') ??
    input.dtlsParameters.fingerprints[0];
  if (!fingerprint) throw new Error('mediasoup transport has no DTLS fingerprint');

  const media: MediaDescription[] = input.sections.map((section) =>
    section.accepted ? acceptedSection(section, section.accepted, input) : rejectedSection(section.media),
  );
  const bundled = input.sections.filter((section) => section.accepted).map((section) => section.media.mid);

  const session: SessionDescription = {
    version: 0,
    origin: {
      username: 'rtccdn',
      sessionId: String(sessionVersionSeed++),
      sessionVersion: 1,
      netType: 'IN',
      ipVer: 4,
      address: '127.0.0.1',
    },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    fingerprint: { type: fingerprint.algorithm, hash: fingerprint.value },
    groups: bundled.length > 0 ? [{ type: 'BUNDLE', mids: bundled.join(' ') }] : [],
    msidSemantic: { semantic: 'WMS', token: '*' },
    media,
  };
  return sdpTransform.write(session);
}

function rejectedSection(media: OfferMedia): MediaDescription {
  const payloads = media.raw.payloads?.split(/\s+/)[0] ?? '0';
  return {
    type: media.type,
    port: 0,
    protocol: media.protocol,
    payloads,
    connection: { version: 4, ip: '0.0.0.0' },
    mid: media.mid,
    direction: 'inactive',
  } as MediaDescription;
}

function acceptedSection(
  section: AnswerSection,
  accepted: NonNullable<AnswerSection['accepted']>,
  input: AnswerInput,
): MediaDescription {
  const { rtpParameters } = accepted;
  const rtp: MediaDescription['rtp'] = [];
  const fmtp: MediaDescription['fmtp'] = [];
  const rtcpFb: NonNullable<MediaDescription['rtcpFb']> = [];
  for (const codec of rtpParameters.codecs) {
    const [, name = ''] = codec.mimeType.split('/');
    rtp.push({
      payload: codec.payloadType,
      codec: name,
      rate: codec.clockRate,
      ...(codec.channels !== undefined && codec.channels > 1 ? { encoding: codec.channels } : {}),
    });
    const config = Object.entries(codec.parameters ?? {})
      .map(([key, value]) => `${key}=${value}`)
      .join(';');
    if (config) fmtp.push({ payload: codec.payloadType, config });
    for (const fb of codec.rtcpFeedback ?? []) {
      rtcpFb.push({
        payload: String(codec.payloadType),
        type: fb.type,
        ...(fb.parameter ? { subtype: fb.parameter } : {}),
      });
    }
  }

  const description: MediaDescription = {
    type: section.media.type,
    port: 9,
    protocol: section.media.protocol,
    payloads: rtpParameters.codecs.map((codec) => codec.payloadType).join(' '),
    connection: { version: 4, ip: '0.0.0.0' },
    rtp,
    fmtp,
    rtcpFb,
    ext: (rtpParameters.headerExtensions ?? []).map((ext) => ({ value: ext.id, uri: ext.uri })),
    mid: section.media.mid,
    direction: accepted.direction,
    iceUfrag: input.iceParameters.usernameFragment,
    icePwd: input.iceParameters.password,
    setup: input.setup,
    rtcpMux: 'rtcp-mux',
    ...(section.media.reducedSize ? { rtcpRsize: 'rtcp-rsize' } : {}),
    candidates: input.iceCandidates.map((candidate) => ({
      foundation: candidate.foundation,
      component: 1,
      transport: candidate.protocol,
      priority: candidate.priority,
      ip: candidate.address,
      port: candidate.port,
      type: candidate.type,
      ...(candidate.protocol === 'tcp' ? { tcptype: candidate.tcpType ?? 'passive' } : {}),
    })),
    endOfCandidates: 'end-of-candidates',
  } as MediaDescription;

  if (accepted.simulcastRids && accepted.simulcastRids.length > 0) {
    description.rids = accepted.simulcastRids.map((id) => ({ id, direction: 'recv' }));
    description.simulcast = { dir1: 'recv', list1: accepted.simulcastRids.join(';') };
  }

  if (accepted.sender) {
    const encoding = rtpParameters.encodings?.[0];
    const cname = rtpParameters.rtcp?.cname ?? 'rtccdn';
    const msid = `${accepted.sender.streamId} ${accepted.sender.trackId}`;
    description.msid = [{ id: accepted.sender.streamId, appdata: accepted.sender.trackId }];
    if (encoding?.ssrc !== undefined) {
      const ssrcs = [encoding.ssrc];
      if (encoding.rtx?.ssrc !== undefined) {
        ssrcs.push(encoding.rtx.ssrc);
        description.ssrcGroups = [{ semantics: 'FID', ssrcs: ssrcs.join(' ') }];
      }
      description.ssrcs = ssrcs.flatMap((id) => [
        { id, attribute: 'cname', value: cname },
        { id, attribute: 'msid', value: msid },
      ]);
    }
  }
  return description;
}
