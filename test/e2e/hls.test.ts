import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type HlsPlayer from 'hls.js';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher } from '../../scripts/harness/peers.js';
import { type LaunchedChromium, launchChromium } from './chromium.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'browser-hls-key-0123456789';
/** hls.js, as a page on another origin would load it. */
const HLS_JS = createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');

interface PlayerState {
  currentTime: number;
  frames: number;
  errors: string[];
}

/**
 * hls.js in headless Chromium (Media Source Extensions, the browser's own H.264/AAC decoders)
 * playing a protected stream from a page on another origin (CORS), and stopped by revocation.
 */
describe('HLS in Chromium with hls.js', () => {
  let running: RunningNode;
  let browser: LaunchedChromium;

  beforeAll(async () => {
    running = await startNode({ ADMIN_TOKEN });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await running?.close();
  });

  it('plays with the key, and stops at the next request once the key is revoked', async () => {
    const acl = await fetch(`${running.baseUrl}/api/v1/streams/show/acl`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys: [{ id: 'viewer', key: KEY }] }),
    });
    expect(acl.status).toBe(200);
    const publisher = new TestPublisher({ width: 640, height: 360, audio: true });
    const page = await browser.context.newPage();
    try {
      expect((await publisher.publish(running.baseUrl, 'show')).status).toBe(201);
      await page.setContent('<video id="v" muted autoplay playsinline></video>');
      await page.addScriptTag({ path: HLS_JS });
      await page.evaluate((url) => {
        const state = { errors: [] as string[] };
        (window as unknown as { state: typeof state }).state = state;
        const Hls = (window as unknown as { Hls: typeof HlsPlayer }).Hls;
        const hls = new Hls({ manifestLoadingMaxRetry: 0, levelLoadingMaxRetry: 2, fragLoadingMaxRetry: 2 });
        hls.on(Hls.Events.ERROR, (_event, data) => {
          state.errors.push(`${data.details}:${data.response?.code ?? ''}:${data.fatal ? 'fatal' : ''}`);
        });
        hls.loadSource(url);
        hls.attachMedia(document.getElementById('v') as HTMLVideoElement);
      }, `${running.baseUrl}/hls/show/index.m3u8?key=${KEY}`);
      const state = () =>
        page.evaluate(() => {
          const video = document.getElementById('v') as HTMLVideoElement;
          return {
            currentTime: video.currentTime,
            frames: video.getVideoPlaybackQuality().totalVideoFrames,
            errors: (window as unknown as { state: { errors: string[] } }).state.errors,
          } satisfies PlayerState;
        });
      expect(await eventually(async () => (await state()).currentTime > 2, 30_000)).toBe(true);
      const playing = await state();
      console.log(
        `hls.js: playing, ${playing.frames} frames presented, errors so far: ${playing.errors.join(' ') || 'none'}`,
      );
      expect(playing.frames).toBeGreaterThan(30);

      const revoked = await fetch(`${running.baseUrl}/api/v1/streams/show/acl/keys/viewer`, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(revoked.status).toBe(200);
      // hls.js hears 403 at its next playlist or segment request and gives up (fatal).
      expect(
        await eventually(
          async () => (await state()).errors.some((error) => /:403:fatal$/.test(error)),
          30_000,
        ),
      ).toBe(true);
      // The picture stops: what it had buffered plays out, then nothing more.
      const stopped = await state();
      await new Promise((resolve) => setTimeout(resolve, 5000));
      const later = await state();
      console.log(
        `hls.js after revocation: ${stopped.errors.join(' ')}; time ${stopped.currentTime} → ${later.currentTime}`,
      );
      expect(later.currentTime - stopped.currentTime).toBeLessThan(4);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect((await state()).currentTime).toBe(later.currentTime);
    } finally {
      await page.close();
      publisher.close();
    }
  }, 90_000);

  it('plays in low-latency mode (parts, blocking reloads) near the live edge', async () => {
    const publisher = new TestPublisher({ width: 640, height: 360, audio: true });
    const page = await browser.context.newPage();
    try {
      expect((await publisher.publish(running.baseUrl, 'lowlatency')).status).toBe(201);
      await page.setContent('<video id="v" muted autoplay playsinline></video>');
      await page.addScriptTag({ path: HLS_JS });
      await page.evaluate((url) => {
        const state = { errors: [] as string[], partLoads: 0, blockingReloads: 0 };
        (window as unknown as { state: typeof state }).state = state;
        const Hls = (window as unknown as { Hls: typeof HlsPlayer }).Hls;
        const hls = new Hls({ lowLatencyMode: true });
        (window as unknown as { hls: typeof hls }).hls = hls;
        hls.on(Hls.Events.ERROR, (_event, data) => {
          state.errors.push(`${data.details}:${data.response?.code ?? ''}:${data.fatal ? 'fatal' : ''}`);
        });
        hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
          if (data.part) state.partLoads++;
        });
        hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
          if (/[?&]_HLS_msn=/.test(data.details.url)) state.blockingReloads++;
        });
        hls.loadSource(url);
        hls.attachMedia(document.getElementById('v') as HTMLVideoElement);
      }, `${running.baseUrl}/hls/lowlatency/index.m3u8`);
      const state = () =>
        page.evaluate(() => {
          const video = document.getElementById('v') as HTMLVideoElement;
          const window_ = window as unknown as {
            state: { errors: string[]; partLoads: number; blockingReloads: number };
            hls: { latency: number; lowLatencyMode: boolean };
          };
          return {
            currentTime: video.currentTime,
            frames: video.getVideoPlaybackQuality().totalVideoFrames,
            latency: window_.hls.latency,
            lowLatencyMode: window_.hls.lowLatencyMode,
            ...window_.state,
          };
        });
      expect(await eventually(async () => (await state()).currentTime > 2, 30_000)).toBe(true);
      const first = await state();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const later = await state();
      console.log(
        `hls.js lowLatencyMode: ${later.frames} frames, ${later.partLoads} parts loaded, ${later.blockingReloads} blocking reloads, latency ${later.latency.toFixed(2)} s, errors: ${later.errors.join(' ') || 'none'}`,
      );
      // Frames advance, from parts fetched after blocking reloads.
      expect(later.lowLatencyMode).toBe(true);
      expect(later.frames).toBeGreaterThan(first.frames + 30);
      expect(later.currentTime).toBeGreaterThan(first.currentTime + 1);
      expect(later.partLoads).toBeGreaterThan(5);
      expect(later.blockingReloads).toBeGreaterThan(5);
      expect(later.errors.filter((error) => error.endsWith(':fatal'))).toEqual([]);
    } finally {
      await page.close();
      publisher.close();
    }
  }, 90_000);
});
