import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import type { types } from 'mediasoup';
import * as sdpTransform from 'sdp-transform';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { PUBLISH_CAPABILITIES } from '../../media-node/src/media/codecs.js';
import { buildAnswer, negotiateDtlsRole } from '../../media-node/src/sdp/answer.js';
import { parseOffer } from '../../media-node/src/sdp/offer.js';
import { producerRtpParameters, viewerRtpCapabilities } from '../../media-node/src/sdp/translate.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
const libwebrtcWhip = fixture('libwebrtc-whip-offer.sdp');
const libwebrtcWhep = fixture('libwebrtc-whep-offer.sdp');
const obsWhip = fixture('obs-h264-whip-offer.sdp');

/** Router capabilities as the node's routers have them (codecs + mediasoup's header extensions). */
const routerCaps: types.RtpCapabilities = PUBLISH_CAPABILITIES;

function sdpError(fn: () => unknown): RtccdnError {
  try {
    fn();
  } catch (error) {
    if (error instanceof RtccdnError && error.code === 'INVALID_SDP') return error;
    throw error;
  }
  throw new Error('expected an INVALID_SDP RtccdnError');
}

describe('parseOffer', () => {
  it('reads ICE, DTLS and every m-section of a libwebrtc offer', () => {
    const offer = parseOffer(libwebrtcWhip);
    expect(offer.iceUfrag).toMatch(/\S+/);
    expect(offer.fingerprint.algorithm).toBe('sha-256');
    expect(offer.setup).toBe('actpass');
    expect(offer.media.map((m) => [m.type, m.mid, m.direction])).toEqual([
      ['video', '0', 'sendonly'],
      ['audio', '1', 'sendonly'],
    ]);
    const video = offer.media[0]!;
    expect(video.ssrc).toBeGreaterThan(0);
    expect(video.rtxSsrc).toBeGreaterThan(0);
    expect(video.cname).toMatch(/\S+/);
  });

  it.each([
    ['empty body', ''],
    ['not SDP', 'hello world'],
    ['no media', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n'],
    ['no ICE credentials', libwebrtcWhip.replace(/a=ice-(ufrag|pwd):.*\r\n/g, '')],
    ['no fingerprint', libwebrtcWhip.replace(/a=fingerprint:.*\r\n/g, '')],
    ['no mid', libwebrtcWhip.replace(/a=mid:.*\r\n/g, '')],
    ['no BUNDLE', libwebrtcWhip.replace(/a=group:BUNDLE.*\r\n/g, '')],
    ['no rtcp-mux', libwebrtcWhip.replace(/a=rtcp-mux\r\n/g, '')],
    [
      'a single-mid BUNDLE leaving a section out',
      libwebrtcWhip.replace(/a=group:BUNDLE.*\r\n/, 'a=group:BUNDLE 0\r\n'),
    ],
  ])('rejects an offer with %s as 400', (_label, text) => {
    expect(sdpError(() => parseOffer(text)).status).toBe(400);
  });
});

describe('producerRtpParameters', () => {
  it('takes VP8 with its RTX, the offered SSRCs and supported header extensions', () => {
    const video = parseOffer(libwebrtcWhip).media[0]!;
    const params = producerRtpParameters(video, routerCaps)!;
    expect(params.mid).toBe('0');
    expect(params.codecs.map((c) => [c.mimeType, c.payloadType])).toEqual([
      ['video/VP8', 96],
      ['video/rtx', 97],
    ]);
    expect(params.codecs[1]!.parameters).toEqual({ apt: 96 });
    expect(params.encodings).toEqual([{ ssrc: video.ssrc, rtx: { ssrc: video.rtxSsrc } }]);
    const uris = params.headerExtensions!.map((ext) => ext.uri);
    expect(uris).toContain('urn:ietf:params:rtp-hdrext:sdes:mid');
    expect(uris).not.toContain('http://www.webrtc.org/experiments/rtp-hdrext/video-timing');
    expect(params.codecs[0]!.rtcpFeedback).toContainEqual({ type: 'nack', parameter: 'pli' });
  });

  it('takes Opus for audio', () => {
    const audio = parseOffer(libwebrtcWhip).media[1]!;
    const params = producerRtpParameters(audio, routerCaps)!;
    expect(params.codecs).toHaveLength(1);
    expect(params.codecs[0]).toMatchObject({ mimeType: 'audio/opus', payloadType: 111, channels: 2 });
  });

  it('matches an H.264 High profile offer (OBS) to the router H.264 High codec', () => {
    const [audio, video] = parseOffer(obsWhip).media;
    expect(producerRtpParameters(audio!, routerCaps)!.codecs[0]!.mimeType).toBe('audio/opus');
    const params = producerRtpParameters(video!, routerCaps)!;
    expect(params.codecs[0]).toMatchObject({ mimeType: 'video/H264', payloadType: 96 });
    expect(params.codecs[0]!.parameters!['profile-level-id']).toBe('64002a');
    expect(params.encodings).toEqual([{ ssrc: 2942421632 }]);
  });

  it('returns undefined when no offered codec is supported', () => {
    const vp9Only = obsWhip
      .replace('m=video 9 UDP/TLS/RTP/SAVPF 96', 'm=video 9 UDP/TLS/RTP/SAVPF 98')
      .replace('a=rtpmap:96 H264/90000', 'a=rtpmap:98 VP9/90000')
      .replace(/a=fmtp:96 .*\r?\n/, '');
    expect(producerRtpParameters(parseOffer(vp9Only).media[1]!, routerCaps)).toBeUndefined();
  });

  it('does not match H.264 packetization-mode 0 (mediasoup routers only speak mode 1)', () => {
    const mode0 = obsWhip.replace('packetization-mode=1', 'packetization-mode=0');
    expect(producerRtpParameters(parseOffer(mode0).media[1]!, routerCaps)).toBeUndefined();
  });
});

describe('viewerRtpCapabilities', () => {
  it("keeps the viewer's payload types and extension ids", () => {
    const [video] = parseOffer(libwebrtcWhep).media;
    const caps = viewerRtpCapabilities(video!);
    expect(caps.codecs).toContainEqual(
      expect.objectContaining({ mimeType: 'video/VP8', preferredPayloadType: 96, kind: 'video' }),
    );
    expect(caps.codecs).toContainEqual(
      expect.objectContaining({ mimeType: 'video/rtx', preferredPayloadType: 97, parameters: { apt: 96 } }),
    );
    expect(caps.headerExtensions!.every((ext) => ext.kind === 'video')).toBe(true);
  });
});

describe('buildAnswer', () => {
  const transport = {
    iceParameters: { usernameFragment: 'srvufrag', password: 'srvpassword', iceLite: true },
    iceCandidates: [
      {
        foundation: 'udpcandidate',
        priority: 1076302079,
        address: '192.0.2.10',
        protocol: 'udp',
        port: 40000,
        type: 'host',
      },
      {
        foundation: 'tcpcandidate',
        priority: 1076276479,
        address: '192.0.2.10',
        protocol: 'tcp',
        port: 40000,
        type: 'host',
        tcpType: 'passive',
      },
    ] as types.IceCandidate[],
    dtlsParameters: {
      role: 'auto',
      fingerprints: [
        { algorithm: 'sha-512', value: 'AA:BB' },
        { algorithm: 'sha-256', value: '11:22:33' },
      ],
    } as types.DtlsParameters,
  };

  it('answers ICE-lite, BUNDLEd, passive, with the server candidates and rejects unusable sections', () => {
    const offer = parseOffer(libwebrtcWhip);
    const [video, audio] = offer.media;
    const text = buildAnswer({
      offer,
      ...transport,
      setup: negotiateDtlsRole(offer.setup).localSetup,
      sections: [
        {
          media: video!,
          accepted: { direction: 'recvonly', rtpParameters: producerRtpParameters(video!, routerCaps)! },
        },
        { media: audio! },
      ],
    });
    expect(text).toMatch(/^v=0\r\n/);
    const answer = sdpTransform.parse(text);
    expect(answer.icelite).toBe('ice-lite');
    expect(answer.fingerprint).toEqual({ type: 'sha-256', hash: '11:22:33' });
    expect(answer.groups?.map((group) => [group.type, String(group.mids)])).toEqual([['BUNDLE', '0']]);
    const [answeredVideo, answeredAudio] = answer.media;
    expect(answeredVideo).toMatchObject({
      mid: 0,
      direction: 'recvonly',
      setup: 'passive',
      port: 9,
      iceUfrag: 'srvufrag',
    });
    expect(answeredVideo!.payloads).toBe('96 97');
    expect(answeredVideo!.candidates).toEqual([
      expect.objectContaining({ transport: 'udp', ip: '192.0.2.10', port: 40000, type: 'host' }),
      expect.objectContaining({ transport: 'tcp', ip: '192.0.2.10', port: 40000, tcptype: 'passive' }),
    ]);
    expect(answeredAudio).toMatchObject({ mid: 1, port: 0, direction: 'inactive' });
  });

  it('signals SSRCs, RTX group and msid when the node sends (WHEP)', () => {
    const offer = parseOffer(libwebrtcWhep);
    const rtpParameters: types.RtpParameters = {
      codecs: [
        {
          mimeType: 'video/VP8',
          payloadType: 96,
          clockRate: 90000,
          rtcpFeedback: [{ type: 'nack', parameter: 'pli' }],
        },
        { mimeType: 'video/rtx', payloadType: 97, clockRate: 90000, parameters: { apt: 96 } },
      ],
      encodings: [{ ssrc: 1111, rtx: { ssrc: 2222 } }],
      rtcp: { cname: 'stream-cname' },
    };
    const answer = sdpTransform.parse(
      buildAnswer({
        offer,
        ...transport,
        setup: 'passive',
        sections: [
          {
            media: offer.media[0]!,
            accepted: { direction: 'sendonly', rtpParameters, sender: { streamId: 's', trackId: 't' } },
          },
          { media: offer.media[1]! },
        ],
      }),
    );
    const video = answer.media[0]!;
    expect(video.ssrcGroups).toEqual([{ semantics: 'FID', ssrcs: '1111 2222' }]);
    expect(video.ssrcs).toContainEqual({ id: 1111, attribute: 'cname', value: 'stream-cname' });
    expect(video.rtcpFb).toContainEqual({ payload: 96, type: 'nack', subtype: 'pli' });
  });

  it('takes the active role when the offerer insists on passive', () => {
    expect(negotiateDtlsRole('passive')).toEqual({ localSetup: 'active', remoteRole: 'server' });
    expect(negotiateDtlsRole('actpass')).toEqual({ localSetup: 'passive', remoteRole: 'client' });
    expect(negotiateDtlsRole('active')).toEqual({ localSetup: 'passive', remoteRole: 'client' });
  });
});
