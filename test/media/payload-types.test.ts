import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { types } from 'mediasoup';
import * as mediasoup from 'mediasoup';
import { PUBLISHABLE_CODECS } from '../../media-node/src/media/codecs.js';
import {
  type PlannedCodec,
  routerMediaCodecs,
  rtxPayloadTypeOf,
} from '../../media-node/src/media/payloadTypes.js';

const opus = PUBLISHABLE_CODECS[0]!;
const vp8 = PUBLISHABLE_CODECS[1]!;
const h264Main = PUBLISHABLE_CODECS[3]!;

/** Routers numbered by routerMediaCodecs(), checked against a real mediasoup worker. */
describe('router payload-type numbering (real mediasoup)', () => {
  let worker: types.Worker;
  beforeAll(async () => {
    worker = await mediasoup.createWorker({ logLevel: 'error' });
  });
  afterAll(() => worker.close());

  async function capabilitiesFor(planned: PlannedCodec[]): Promise<types.RtpCapabilities> {
    const router = await worker.createRouter({ mediaCodecs: routerMediaCodecs(planned) });
    const capabilities = router.rtpCapabilities;
    router.close();
    return capabilities;
  }

  const payloadTypeOf = (capabilities: types.RtpCapabilities, mimeType: string) =>
    capabilities.codecs?.find((codec) => codec.mimeType === mimeType)?.preferredPayloadType;

  it.each([
    ['libwebrtc', 111, 96, 97],
    ['Firefox', 109, 120, 124],
    ['RTX before its codec in the dynamic list', 111, 127, 100],
    ['RTX last in the dynamic list', 111, 98, 99],
  ])('gives %s numbering its media and RTX payload types', async (_label, opusPt, videoPt, rtxPt) => {
    const capabilities = await capabilitiesFor([
      { codec: vp8, payloadType: videoPt, rtxPayloadType: rtxPt },
      { codec: opus, payloadType: opusPt },
    ]);
    expect(payloadTypeOf(capabilities, 'audio/opus')).toBe(opusPt);
    expect(payloadTypeOf(capabilities, 'video/VP8')).toBe(videoPt);
    expect(rtxPayloadTypeOf(capabilities, videoPt)).toBe(rtxPt);
  });

  it('numbers H.264 with its profile', async () => {
    const capabilities = await capabilitiesFor([{ codec: h264Main, payloadType: 127, rtxPayloadType: 125 }]);
    const h264 = capabilities.codecs?.find((codec) => codec.mimeType === 'video/H264');
    expect(h264?.preferredPayloadType).toBe(127);
    expect(h264?.parameters?.['profile-level-id']).toBe('4d001f');
    expect(rtxPayloadTypeOf(capabilities, 127)).toBe(125);
  });

  it('keeps the media payload type when the RTX one is outside the dynamic range, without RTX', async () => {
    // Some libwebrtc builds put codecs at 35-63; mediasoup only allocates RTX from 96-127.
    const capabilities = await capabilitiesFor([{ codec: vp8, payloadType: 45, rtxPayloadType: 46 }]);
    expect(payloadTypeOf(capabilities, 'video/VP8')).toBe(45);
    expect(rtxPayloadTypeOf(capabilities, 45)).not.toBe(46);
  });
});
