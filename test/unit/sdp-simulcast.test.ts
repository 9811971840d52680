import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import type { types } from 'mediasoup';
import * as sdpTransform from 'sdp-transform';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { PUBLISH_CAPABILITIES } from '../../media-node/src/media/codecs.js';
import { buildAnswer } from '../../media-node/src/sdp/answer.js';
import { parseOffer } from '../../media-node/src/sdp/offer.js';
import { producerRtpParameters } from '../../media-node/src/sdp/translate.js';

/** Chromium 1xx: addTransceiver(track, { sendEncodings: [q ÷4, h ÷2, f] }) plus an audio track. */
const chromiumSimulcast = readFileSync(
  new URL('../fixtures/chromium-simulcast-whip-offer.sdp', import.meta.url),
  'utf8',
);
const libwebrtcWhip = readFileSync(new URL('../fixtures/libwebrtc-whip-offer.sdp', import.meta.url), 'utf8');

function sdpError(fn: () => unknown): RtccdnError {
  try {
    fn();
  } catch (error) {
    if (error instanceof RtccdnError && error.code === 'INVALID_SDP') return error;
    throw error;
  }
  throw new Error('expected an INVALID_SDP RtccdnError');
}

/** The Chromium offer with its a=simulcast / a=rid lines replaced. */
function withSimulcastLines(lines: string[]): string {
  return chromiumSimulcast
    .split('\r\n')
    .filter((line) => !line.startsWith('a=rid:') && !line.startsWith('a=simulcast:'))
    .flatMap((line) =>
      line.startsWith('a=rtcp-rsize') && lines.length > 0 ? [line, ...lines.splice(0)] : [line],
    )
    .join('\r\n');
}

describe('simulcast offers', () => {
  it('reads the RID layers of a Chromium offer, lowest first', () => {
    const video = parseOffer(chromiumSimulcast).media.find((media) => media.type === 'video')!;
    expect(video.simulcast).toEqual({
      layers: [{ rid: 'q' }, { rid: 'h' }, { rid: 'f' }],
      offeredRids: ['q', 'h', 'f'],
    });
    const audio = parseOffer(chromiumSimulcast).media.find((media) => media.type === 'audio')!;
    expect(audio.simulcast).toBeUndefined();
  });

  it('orders known RID names and max-width/max-height restrictions lowest first', () => {
    const reversed = withSimulcastLines([
      'a=rid:f send',
      'a=rid:h send',
      'a=rid:q send',
      'a=simulcast:send f;h;q',
    ]);
    expect(parseOffer(reversed).media[0]!.simulcast).toEqual({
      layers: [{ rid: 'q' }, { rid: 'h' }, { rid: 'f' }],
      offeredRids: ['f', 'h', 'q'],
    });
    const sized = withSimulcastLines([
      'a=rid:0 send max-width=1280;max-height=720',
      'a=rid:1 send max-width=640;max-height=360',
      'a=rid:2 send max-width=320;max-height=180',
      'a=simulcast:send 0;1;~2',
    ]);
    expect(parseOffer(sized).media[0]!.simulcast?.layers).toEqual([{ rid: '2' }, { rid: '1' }, { rid: '0' }]);
    const unknown = withSimulcastLines(['a=rid:a send', 'a=rid:b send', 'a=simulcast:send a;b']);
    expect(parseOffer(unknown).media[0]!.simulcast?.layers).toEqual([{ rid: 'a' }, { rid: 'b' }]);
  });

  it('reads legacy SSRC simulcast (a=ssrc-group:SIM) with each layer’s RTX', () => {
    const sim = libwebrtcWhip.replace(
      /a=ssrc-group:FID (\d+) (\d+)/,
      'a=ssrc-group:SIM 1001 1002 1003\r\na=ssrc-group:FID 1001 2001\r\na=ssrc-group:FID 1002 2002\r\na=ssrc-group:FID 1003 2003',
    );
    const video = parseOffer(sim).media[0]!;
    expect(video.simulcast?.layers).toEqual([
      { ssrc: 1001, rtxSsrc: 2001 },
      { ssrc: 1002, rtxSsrc: 2002 },
      { ssrc: 1003, rtxSsrc: 2003 },
    ]);
    expect(producerRtpParameters(video, PUBLISH_CAPABILITIES)?.encodings).toEqual([
      { scalabilityMode: 'L1T3', ssrc: 1001, rtx: { ssrc: 2001 } },
      { scalabilityMode: 'L1T3', ssrc: 1002, rtx: { ssrc: 2002 } },
      { scalabilityMode: 'L1T3', ssrc: 1003, rtx: { ssrc: 2003 } },
    ]);
  });

  it('refuses inconsistent or oversized simulcast offers with a reason', () => {
    expect(
      sdpError(() => parseOffer(withSimulcastLines(['a=rid:q send', 'a=simulcast:send q;h']))).message,
    ).toMatch(/rid "h" without a=rid:h send/);
    const five = ['a', 'b', 'c', 'd', 'e'];
    expect(
      sdpError(() =>
        parseOffer(
          withSimulcastLines([
            ...five.map((rid) => `a=rid:${rid} send`),
            `a=simulcast:send ${five.join(';')}`,
          ]),
        ),
      ).message,
    ).toMatch(/5 simulcast layers; at most 4/);
    expect(
      sdpError(() => parseOffer(withSimulcastLines(['a=rid:q recv', 'a=rid:h recv', 'a=simulcast:recv q;h'])))
        .message,
    ).toMatch(/only a=simulcast:send/);
    const noRidExtension = chromiumSimulcast.replace(
      /a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n/,
      '',
    );
    const video = parseOffer(noRidExtension).media[0]!;
    expect(sdpError(() => producerRtpParameters(video, PUBLISH_CAPABILITIES)).message).toMatch(
      /rtp-stream-id/,
    );
  });

  it('gives the producer one encoding per RID and answers a=simulcast:recv with the offered RIDs', () => {
    const offer = parseOffer(chromiumSimulcast);
    const video = offer.media[0]!;
    const rtpParameters = producerRtpParameters(video, PUBLISH_CAPABILITIES)!;
    // Three temporal layers each, as libwebrtc sends VP8 simulcast (mediasoup forwards only the
    // temporal layers a producer declares).
    expect(rtpParameters.encodings).toEqual(['q', 'h', 'f'].map((rid) => ({ rid, scalabilityMode: 'L1T3' })));
    expect(rtpParameters.headerExtensions?.map((ext) => ext.uri)).toEqual(
      expect.arrayContaining([
        'urn:ietf:params:rtp-hdrext:sdes:mid',
        'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
      ]),
    );
    const answer = sdpTransform.parse(
      buildAnswer({
        offer,
        iceParameters: { usernameFragment: 'ufrag', password: 'password', iceLite: true },
        iceCandidates: [],
        dtlsParameters: {
          role: 'auto',
          fingerprints: [{ algorithm: 'sha-256', value: '11:22' }],
        } as types.DtlsParameters,
        setup: 'passive',
        sections: offer.media.map((media) =>
          media === video
            ? {
                media,
                accepted: {
                  direction: 'recvonly',
                  rtpParameters,
                  simulcastRids: video.simulcast!.offeredRids,
                },
              }
            : { media },
        ),
      }),
    );
    expect(answer.media[0]!.rids).toEqual([
      { id: 'q', direction: 'recv' },
      { id: 'h', direction: 'recv' },
      { id: 'f', direction: 'recv' },
    ]);
    expect(answer.media[0]!.simulcast).toEqual({ dir1: 'recv', list1: 'q;h;f' });
  });
});
