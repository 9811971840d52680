import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { makeCertificate } from '../../scripts/harness/https.js';
import { type NodeProcess, spawnNode } from '../../scripts/harness/node-process.js';
import { freeTcpPort, portBlock } from '../../scripts/harness/ports.js';
import { type LaunchedChromium, launchChromium } from './chromium.js';

interface DemoState {
  publishing: boolean;
  source: 'clock' | 'camera' | null;
  playing: boolean;
  framesDecoded: number;
  width: number;
  lastError: string | null;
}

/** An address of this machine other than loopback: what a browser on another machine would use. */
function externalAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  throw new Error('this machine has no non-loopback IPv4 address: the test needs one (a browser elsewhere)');
}

/**
 * Browsers give camera and microphone only to secure contexts: https:, or http://localhost. A
 * viewer on another machine reaches the node by its address, so the demo page must be served
 * over HTTPS there. Shown with Chromium (fake camera) against a self-signed certificate.
 */
describe('demo page over HTTPS from a non-localhost address (Chromium)', () => {
  const address = externalAddress();
  const certificate = makeCertificate('rtccdn-e2e', [address]);
  const dir = mkdtempSync(join(tmpdir(), 'rtccdn-e2e-tls-'));
  let secure: NodeProcess;
  let plain: NodeProcess;
  let chromium: LaunchedChromium;
  const pages: Page[] = [];

  beforeAll(async () => {
    writeFileSync(join(dir, 'tls.crt'), certificate.cert);
    writeFileSync(join(dir, 'tls.key'), certificate.key);
    const env = async () => ({
      HOST: address,
      RTC_LISTEN_IP: address,
      RTC_PORT: String(portBlock(1)),
      WORKERS: '1',
      PORT: String(await freeTcpPort()),
      DEMO_PAGE: 'true',
    });
    secure = await spawnNode({
      ...(await env()),
      TLS_CERT_FILE: join(dir, 'tls.crt'),
      TLS_KEY_FILE: join(dir, 'tls.key'),
    });
    plain = await spawnNode(await env());
    chromium = await launchChromium({ ignoreCertificateErrors: true });
  }, 90_000);
  afterAll(async () => {
    for (const page of pages) await page.close().catch(() => {});
    await chromium?.close();
    await secure?.stop();
    await plain?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  async function open(url: string): Promise<Page> {
    const page = await chromium.context.newPage();
    pages.push(page);
    await page.goto(url);
    return page;
  }

  async function until(page: Page, what: string, condition: (s: DemoState) => boolean): Promise<DemoState> {
    const read = () =>
      page.evaluate(() => (window as unknown as { rtccdnDemo: { state: DemoState } }).rtccdnDemo.state);
    const deadline = Date.now() + 20_000;
    let last = await read();
    while (!condition(last)) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; state=${JSON.stringify(last)}`);
      await page.waitForTimeout(100);
      last = await read();
    }
    return last;
  }

  it('is not a secure context over plain HTTP: no camera (the page falls back to its synthetic clock)', async () => {
    expect(plain.baseUrl).toBe(plain.baseUrl.replace('127.0.0.1', address));
    const page = await open(`${plain.baseUrl}/?publish=cam-plain&source=camera`);
    expect(await page.evaluate(() => window.isSecureContext)).toBe(false);
    const state = await until(page, 'an answer', (s) => s.publishing || s.lastError !== null);
    expect(state.source).toBe('clock');
    expect(await page.textContent('#pub-status')).toMatch(/no camera: getUserMedia unavailable/);
  }, 60_000);

  it('is a secure context over HTTPS: the fake camera publishes (WHIP) and plays back (WHEP)', async () => {
    expect(secure.baseUrl).toBe(`https://${address}:${new URL(secure.baseUrl).port}`);
    const publisher = await open(`${secure.baseUrl}/?publish=cam-https&source=camera`);
    expect(await publisher.evaluate(() => [window.isSecureContext, location.protocol])).toEqual([
      true,
      'https:',
    ]);
    const published = await until(publisher, 'publishing', (s) => s.publishing || s.lastError !== null);
    expect(published.lastError).toBeNull();
    expect(published.source).toBe('camera');

    const player = await open(`${secure.baseUrl}/?play=cam-https`);
    const played = await until(
      player,
      'decoded frames',
      (s) => (s.framesDecoded > 10 && s.width > 0) || s.lastError !== null,
    );
    expect(played.lastError).toBeNull();
    expect(played.playing).toBe(true);
    // The page's requests went over HTTP/2 (Chromium offers h2 over TLS).
    const protocols = await player.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .map((entry) => (entry as PerformanceResourceTiming).nextHopProtocol),
    );
    expect(protocols).toContain('h2');
  }, 60_000);
});
