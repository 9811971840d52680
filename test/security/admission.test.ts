/**
 * Node-wide admission under a flash crowd: besides each client's quota, the node bounds the
 * sessions it sets up at once (MAX_PENDING_SESSIONS: joins answered but not yet connected, from
 * all clients together). A join past it waits in line for a slot (ADMISSION_QUEUE_MS, at most
 * 4 × MAX_PENDING_SESSIONS waiting); past either, 503 + Retry-After, counted in
 * rtccdn_limit_refusals_total{limit="node-pending-sessions"}; rtccdn_admission_sessions{state}
 * shows the slots held ("pending") and the line ("waiting"). A slot frees when a session
 * connects or is reclaimed. Real mediasoup; the offers here never connect (CONNECT_TIMEOUT_MS
 * reclaims them), so slots free one by one, in order.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { postSdp, TestPublisher } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');

describe('node-wide admission (standalone node)', () => {
  let running: RunningNode;
  const source = new TestPublisher();
  const from = (client: string) => ({ 'X-Forwarded-For': client });
  /** rtccdn_admission_sessions{state} from the node's /metrics. */
  const admission = async () => {
    const text = await (await fetch(`${running.internalUrl}/metrics`)).text();
    const read = (state: string) =>
      Number(new RegExp(`^rtccdn_admission_sessions\\{state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    return { pending: read('pending'), waiting: read('waiting') };
  };

  /** Waits (up to 5 s) until `count` joins wait in line. */
  const inLine = async (count: number) => {
    const deadline = Date.now() + 5_000;
    while ((await admission()).waiting < count) {
      if (Date.now() > deadline) throw new Error(`${count} joins never waited in line`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  beforeAll(async () => {
    running = await startNode({
      TRUSTED_PROXIES: '127.0.0.1',
      CONNECT_TIMEOUT_MS: '2000',
      MAX_PENDING_SESSIONS: '1',
      ADMISSION_QUEUE_MS: '4500',
    });
    const published = await postSdp(
      `${running.baseUrl}/whip/live`,
      await source.createOffer(),
      from('192.0.2.1'),
    );
    expect(published.status).toBe(201);
    await source.applyAnswer(published.body);
  }, 30_000);
  afterAll(async () => {
    source.close();
    await running.close();
  });

  it('queues joins past MAX_PENDING_SESSIONS, admits them as slots free, and sheds the rest with 503 + Retry-After', async () => {
    const join = (client: string) => postSdp(`${running.baseUrl}/whep/live`, whepOffer, from(client));
    // Different clients throughout: no per-client quota is reached.
    expect((await join('198.51.100.1')).status).toBe(201); // holds the only slot
    // Each join is sent once the one before it is in line: requests sent together may reach the
    // node in any order, and which of them gets a slot depends on its place in the line.
    const waiting: ReturnType<typeof join>[] = [];
    for (const client of ['198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5']) {
      waiting.push(join(client));
      await inLine(waiting.length);
    }
    // The gauge shows the held slot and the line.
    expect(await admission()).toEqual({ pending: 1, waiting: 4 });
    // The line holds 4 × MAX_PENDING_SESSIONS: the next is refused at once.
    const overflow = await join('198.51.100.6');
    expect(overflow.status).toBe(503);
    expect(Number(overflow.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(overflow.body)).toMatchObject({ code: 'NODE_LIMIT' });
    const [first, , , last] = await Promise.all(waiting);
    // The first in line gets the slot the reclaimed session frees (2 s, within its 4.5 s wait)…
    expect(first!.status).toBe(201);
    // …the last would need four sessions reclaimed one after another (8 s): refused after 4.5 s.
    expect(last!.status).toBe(503);
    expect(last!.headers.get('retry-after')).toMatch(/^[1-3]$/);
    const metrics = await (await fetch(`${running.internalUrl}/metrics`)).text();
    const refused = /rtccdn_limit_refusals_total\{limit="node-pending-sessions"\} (\d+)/.exec(metrics);
    expect(Number(refused?.[1])).toBeGreaterThanOrEqual(2);
    // Once the sessions that never connect are reclaimed, no slot is left held and no one waits.
    const deadline = Date.now() + 10_000;
    let now = await admission();
    while ((now.pending !== 0 || now.waiting !== 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      now = await admission();
    }
    expect(now).toEqual({ pending: 0, waiting: 0 });
  }, 30_000);
});
