import { mkdir } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { type LaunchedChromium, launchChromium } from './chromium.js';

/** What the demo page exposes as window.rtccdnDemo.state. */
interface DemoState {
  publishing: boolean;
  source: 'clock' | 'camera' | null;
  playing: boolean;
  framesDecoded: number;
  latencyMs: number | null;
  width: number;
  height: number;
  fps: number;
  lastError: string | null;
}

const SCREENSHOT = 'test-results/demo-player.png';

describe('demo page in a real browser (Chromium → WHIP → mediasoup → WHEP → Chromium)', () => {
  let running: RunningNode;
  let chromium: LaunchedChromium;
  let pages: Page[] = [];
  const consoleLines: string[] = [];

  beforeAll(async () => {
    running = await startNode();
    chromium = await launchChromium();
  }, 60_000);
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close().catch(() => {});
    pages = [];
    consoleLines.length = 0;
  });
  afterAll(async () => {
    await chromium?.close();
    await running?.close();
  }, 60_000);

  async function open(path: string): Promise<Page> {
    const page = await chromium.context.newPage();
    pages.push(page);
    page.on('console', (message) => consoleLines.push(`[${path}] ${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => consoleLines.push(`[${path}] pageerror: ${error.message}`));
    await page.goto(`${running.baseUrl}${path}`);
    return page;
  }

  function state(page: Page): Promise<DemoState> {
    return page.evaluate(() => (window as unknown as { rtccdnDemo: { state: DemoState } }).rtccdnDemo.state);
  }

  /** Polls the page's state until `condition` holds; fails with the state and console on timeout. */
  async function until(page: Page, what: string, condition: (s: DemoState) => boolean, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    let last = await state(page);
    while (!condition(last)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; state=${JSON.stringify(last)}\n${consoleLines.join('\n')}`,
        );
      }
      await page.waitForTimeout(100);
      last = await state(page);
    }
    return last;
  }

  it('publishes the synthetic clock and plays it back with a measured glass-to-glass latency', async () => {
    const publisher = await open('/?publish=e2e&source=clock');
    const published = await until(publisher, 'publishing', (s) => s.publishing || s.lastError !== null);
    expect(published.lastError).toBeNull();
    expect(published.source).toBe('clock');

    const player = await open('/?play=e2e');
    const played = await until(
      player,
      'decoded frames and a latency reading',
      (s) => (s.framesDecoded > 10 && typeof s.latencyMs === 'number') || s.lastError !== null,
    );
    expect(played.lastError).toBeNull();
    expect(played.playing).toBe(true);
    expect(typeof played.latencyMs).toBe('number');
    // Measured, not judged here: bench/latency.ts has the numbers.
    expect(played.latencyMs).toBeGreaterThanOrEqual(0);
    const videoWidth = await player.$eval('#player', (video) => (video as HTMLVideoElement).videoWidth);
    expect(videoWidth).toBeGreaterThan(0);

    // The page shows the reading, and the stream list shows the stream with its viewer.
    await player.waitForFunction(() =>
      /glass-to-glass: \d+ ms/.test(document.querySelector('#latency')?.textContent ?? ''),
    );
    await player.waitForFunction(() =>
      /e2e.*1 viewer\b/.test(document.querySelector('#streams')?.textContent ?? ''),
    );
    await mkdir('test-results', { recursive: true });
    await player.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`demo player: ${await player.textContent('#latency')}; screenshot ${SCREENSHOT}`);
  }, 60_000);

  it('publishes the (fake) camera and plays it back, reporting latency as n/a', async () => {
    const publisher = await open('/?publish=e2e-cam&source=camera');
    const published = await until(publisher, 'publishing', (s) => s.publishing || s.lastError !== null);
    expect(published.lastError).toBeNull();
    expect(published.source).toBe('camera');

    const player = await open('/?play=e2e-cam');
    const played = await until(
      player,
      'decoded camera frames',
      (s) => (s.framesDecoded > 10 && s.width > 0) || s.lastError !== null,
    );
    expect(played.lastError).toBeNull();
    expect(played.playing).toBe(true);
    expect(await player.$eval('#player', (video) => (video as HTMLVideoElement).videoWidth)).toBeGreaterThan(
      0,
    );
    // The camera carries no clock code, so the page must say so rather than invent a number.
    await player.waitForFunction(
      () => document.querySelector('#latency')?.textContent === 'latency: n/a (camera)',
      undefined,
      { timeout: 10_000 },
    );
    expect((await state(player)).latencyMs).toBeNull();

    // Closing the publisher ends the stream: the node closes the viewer with a DTLS close alert,
    // which the page reports as "ended" (connectionState alone would only change on ICE timeout).
    await publisher.close();
    await player.waitForFunction(
      () => /ended/.test(document.querySelector('#play-status')?.textContent ?? ''),
      undefined,
      { timeout: 10_000 },
    );
    expect((await state(player)).playing).toBe(false);
  }, 60_000);
});
