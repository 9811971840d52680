/**
 * TRANSCODER_MAX_JOBS: FFmpeg is CPU-bound, so a transcoder runs at most that many renditions;
 * one more is refused with 503 and Retry-After (players fall back to the source). Standalone
 * node, real FFmpeg.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { postSdp, TestPublisher } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const PROFILES = JSON.stringify([
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 500_000 },
  { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 200_000 },
]);

describe('TRANSCODER_MAX_JOBS', () => {
  let running: RunningNode;
  const publisher = new TestPublisher({ width: 640, height: 480 });
  beforeAll(async () => {
    running = await startNode({ PROFILES, TRANSCODER_MAX_JOBS: '1', TRANSCODE_LINGER_MS: '60000' });
    expect((await publisher.publish(running.baseUrl, 'match')).status).toBe(201);
  }, 30_000);
  afterAll(async () => {
    publisher.close();
    await running.close();
  });

  it('runs one rendition and refuses a second with 503 and Retry-After; joining the first is fine', async () => {
    expect((await postSdp(`${running.baseUrl}/whep/match?profile=360p`, whepOffer)).status).toBe(201);
    const refused = await postSdp(`${running.baseUrl}/whep/match?profile=180p`, whepOffer);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(JSON.parse(refused.body).message).toBe('transcoder at its limit of 1 renditions');
    expect((await postSdp(`${running.baseUrl}/whep/match?profile=360p`, whepOffer)).status).toBe(201);
    expect([...running.node.transcoder!.jobs.keys()]).toEqual(['match~360p']);
  }, 30_000);
});
