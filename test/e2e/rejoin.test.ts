import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { TestCluster } from '../../scripts/harness/cluster.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import { type LaunchedChromium, launchChromium } from './chromium.js';

/** What the demo page exposes as window.rtccdnDemo.state (the part this test reads). */
interface DemoState {
  publishing: boolean;
  playing: boolean;
  lastError: string | null;
  rejoins: number;
  republishes: number;
  lastEndReason: string | null;
  framesPresented: number;
  longestGapMs: number;
}

/**
 * What a Kubernetes Service does for the page, on loopback: one URL in front of the edges (WHEP)
 * and the origins (WHIP). A new session goes to a node that takes it — one that refuses (503:
 * draining, as an unready pod is out of a Service's endpoints) or cannot be reached is skipped;
 * the session resource (DELETE) goes to the node that holds it.
 */
class ServiceProxy {
  readonly sessions = new Map<string, string>();
  /** Where each new session went: [protocol, node base URL]. */
  readonly placed: [string, string][] = [];
  readonly #server: Server;
  constructor(
    readonly origins: () => string[],
    readonly edges: () => string[],
  ) {
    this.#server = createServer((request, response) => {
      void this.#handle(request, response).catch((error: Error) => {
        response.writeHead(502).end(error.message);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  close(): void {
    this.#server.closeAllConnections();
    this.#server.close();
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
    const url = request.url ?? '/';
    const method = request.method ?? 'GET';
    const protocol = /^\/(whip|whep)\//.exec(url)?.[1];
    const path = url.split('?')[0]!;
    let candidates: string[];
    if (protocol && method !== 'POST' && method !== 'OPTIONS') {
      const holder = this.sessions.get(path);
      if (!holder) return void response.writeHead(404).end();
      candidates = [holder];
    } else if (protocol === 'whep') candidates = this.edges();
    else if (protocol === 'whip') candidates = this.origins();
    else candidates = [...this.origins(), ...this.edges()];
    let last: Response | undefined;
    for (const base of candidates) {
      let answer: Response;
      try {
        answer = await fetch(`${base}${url}`, {
          method,
          headers: Object.fromEntries(
            ['content-type', 'authorization']
              .filter((name) => request.headers[name] !== undefined)
              .map((name) => [name, String(request.headers[name])]),
          ),
          ...(body ? { body } : {}),
          signal: AbortSignal.timeout(5000),
        });
      } catch {
        continue; // not reachable: the next endpoint
      }
      last = answer;
      if (method === 'POST' && protocol && answer.status === 503) continue;
      const location = answer.headers.get('location');
      if (method === 'POST' && protocol && answer.status === 201 && location) {
        // Keyed by the resource's path: in a CDN the Location also names its node (`?node=`).
        this.sessions.set(location.split('?')[0]!, base);
        this.placed.push([protocol, base]);
      }
      const headers: Record<string, string> = {};
      for (const name of ['content-type', 'location', 'etag', 'retry-after', 'cache-control']) {
        const value = answer.headers.get(name);
        if (value !== null) headers[name] = value;
      }
      response.writeHead(answer.status, headers).end(Buffer.from(await answer.arrayBuffer()));
      return;
    }
    if (last) {
      response.writeHead(last.status, { 'retry-after': last.headers.get('retry-after') ?? '1' }).end();
    } else response.writeHead(502).end('no endpoint');
  }
}

/**
 * The reference player (the demo page in headless Chromium) re-joins transparently: an origin
 * and two edges behind one URL (a stand-in for the Service); the edge the page plays from is
 * drained (deadline), then killed; the page publishes through an origin that is killed. Each
 * time the page must end up playing again on a node that is still there; the interruption it
 * saw (longest pause between presented frames) is logged, not judged.
 */
describe('demo page re-joins (drain deadline, dead edge, dead origin)', () => {
  let redis: RedisServer;
  let cluster: TestCluster;
  let proxy: ServiceProxy;
  let base: string;
  let chromium: LaunchedChromium;
  let publisher: Page;
  let player: Page;
  const consoleLines: string[] = [];
  const live = (role: string) =>
    [...cluster.nodes.values()].filter((node) => node.spec.role === role).map((node) => node.baseUrl);
  const idOf = (url: string) => [...cluster.nodes.values()].find((node) => node.baseUrl === url)?.spec.id;

  beforeAll(async () => {
    redis = await startRedisServer();
    cluster = new TestCluster(redis.url, { RELAY_LINGER_MS: '2000', DEMO_PAGE: 'true' });
    await cluster.add(
      { id: 'origin-r1', role: 'origin', region: 'r' },
      { id: 'origin-r2', role: 'origin', region: 'r' },
      { id: 'edge-r1', role: 'edge', region: 'r' },
      { id: 'edge-r2', role: 'edge', region: 'r' },
    );
    proxy = new ServiceProxy(
      () => live('origin'),
      () => live('edge'),
    );
    base = await proxy.listen();
    chromium = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await chromium?.close();
    proxy?.close();
    await cluster?.stopAll();
    await redis?.stop();
  }, 60_000);

  async function open(path: string): Promise<Page> {
    const page = await chromium.context.newPage();
    page.on('console', (message) => consoleLines.push(`[${path}] ${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => consoleLines.push(`[${path}] pageerror: ${error.message}`));
    await page.goto(`${base}${path}`);
    return page;
  }

  function state(page: Page): Promise<DemoState> {
    return page.evaluate(() => (window as unknown as { rtccdnDemo: { state: DemoState } }).rtccdnDemo.state);
  }

  async function until(page: Page, what: string, condition: (s: DemoState) => boolean, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    let last = await state(page);
    while (!condition(last)) {
      if (Date.now() > deadline) {
        const status = await page.textContent('#play-status').catch(() => '');
        throw new Error(
          `timed out waiting for ${what}; state=${JSON.stringify(last)} status=${status}\n${consoleLines.join('\n')}`,
        );
      }
      await page.waitForTimeout(100);
      last = await state(page);
    }
    return last;
  }

  const resetGap = (page: Page) =>
    page.evaluate(() => {
      (window as unknown as { rtccdnDemo: { state: DemoState } }).rtccdnDemo.state.longestGapMs = 0;
    });
  const servingEdge = () => proxy.placed.filter(([protocol]) => protocol === 'whep').at(-1)?.[1];

  it('plays through the Service URL; the edge it plays from drains: the page re-joins another edge and frames keep coming', async () => {
    publisher = await open('/?publish=roll');
    expect(
      (await until(publisher, 'publishing', (s) => s.publishing || s.lastError !== null)).lastError,
    ).toBeNull();
    player = await open('/?play=roll');
    await until(player, 'frames', (s) => s.framesPresented > 30 || s.lastError !== null);
    const first = servingEdge()!;
    expect(first).toBeDefined();

    await resetGap(player);
    const before = await state(player);
    const drainedAt = Date.now();
    await cluster.client.request('POST', cluster.target(idOf(first)!), '/internal/v1/drain', {
      draining: true,
      deadlineMs: 1500,
    });
    const after = await until(
      player,
      're-joined and 30 more frames',
      (s) => s.rejoins > before.rejoins && s.playing && s.framesPresented > before.framesPresented + 60,
    );
    expect(after.lastError).toBeNull();
    expect(after.lastEndReason).toBe('node-draining');
    const second = servingEdge()!;
    expect(second).not.toBe(first);
    // Frames came in the drain's first second (the edge kept serving until its deadline).
    console.log(
      `re-join after a drain deadline: longest pause between presented frames ${after.longestGapMs} ms ` +
        `(${idOf(first)} → ${idOf(second)}, ${Date.now() - drainedAt} ms after the drain call)`,
    );
    await cluster.client.request('POST', cluster.target(idOf(first)!), '/internal/v1/drain', {
      draining: false,
    });
  }, 90_000);

  it('the edge it plays from dies (no close alert): the page re-joins the other edge', async () => {
    const serving = servingEdge()!;
    await resetGap(player);
    const before = await state(player);
    cluster.kill(idOf(serving)!);
    const after = await until(
      player,
      're-joined after the edge died',
      (s) => s.rejoins > before.rejoins && s.playing && s.framesPresented > before.framesPresented + 60,
    );
    expect(after.lastError).toBeNull();
    expect(after.lastEndReason).toBe('unreachable');
    expect(servingEdge()).not.toBe(serving);
    console.log(
      `re-join after an edge died: longest pause between presented frames ${after.longestGapMs} ms`,
    );
  }, 90_000);

  it('the origin the page publishes to dies: the publisher re-publishes through the same URL, the player keeps playing', async () => {
    const origin = proxy.placed.filter(([protocol]) => protocol === 'whip').at(-1)![1];
    await resetGap(player);
    const before = await state(player);
    const published = await state(publisher);
    cluster.kill(idOf(origin)!);
    const republished = await until(
      publisher,
      're-published',
      (s) => s.republishes > published.republishes && s.publishing,
    );
    expect(republished.lastError).toBeNull();
    const placed = proxy.placed.filter(([protocol]) => protocol === 'whip').at(-1)![1];
    expect(placed).not.toBe(origin);
    const after = await until(
      player,
      'frames from the new origin',
      (s) => s.playing && s.framesPresented > before.framesPresented + 90,
    );
    expect(after.lastError).toBeNull();
    console.log(
      `publisher moved to another origin: longest pause at the player ${after.longestGapMs} ms ` +
        `(player re-joins: ${after.rejoins - before.rejoins})`,
    );
  }, 90_000);
});
