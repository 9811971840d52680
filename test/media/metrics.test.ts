/**
 * The metrics the README documents exist under those names, and the core ones count what they
 * say (a publisher, a viewer, requests, bitrates, closed sessions). Real mediasoup and peers.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('metrics (standalone node)', () => {
  let running: RunningNode;
  const publisher = new TestPublisher();
  const viewer = new TestViewer();
  const scrape = async () => (await fetch(`${running.internalUrl}/metrics`)).text();
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  beforeAll(async () => {
    running = await startNode({ WORKERS: '2' });
  });
  afterAll(async () => {
    viewer.close();
    publisher.close();
    await running.close();
  });

  it('exposes every metric the README names', async () => {
    const documented = [...new Set(README.match(/`(rtccdn_[a-z_]+)/g)?.map((name) => name.slice(1)) ?? [])];
    expect(documented.length).toBeGreaterThan(15);
    const text = await scrape();
    const exposed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]));
    // Histograms are documented by their name; counters may be documented with _total.
    const missing = documented.filter(
      (name) => !exposed.has(name) && !exposed.has(name.replace(/_total$/, '')),
    );
    expect(missing).toEqual([]);
    expect(text).toMatch(/^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
  });

  it('counts a publisher, a viewer, their requests, their bitrates and how their sessions ended', async () => {
    expect((await publisher.publish(running.baseUrl, 'metered')).status).toBe(201);
    expect((await viewer.play(running.baseUrl, 'metered')).status).toBe(201);
    await viewer.waitForFrames(5);
    let text = await scrape();
    expect(value(text, 'rtccdn_publishers')).toBe(1);
    expect(value(text, 'rtccdn_viewers{stream="metered"}')).toBe(1);
    expect(value(text, 'rtccdn_workers')).toBe(2);
    expect(value(text, 'rtccdn_http_requests_total{protocol="whip",method="POST",status="201"}')).toBe(1);
    expect(value(text, 'rtccdn_http_requests_total{protocol="whep",method="POST",status="201"}')).toBe(1);
    // Bitrates are sampled every 5 s.
    expect(
      await eventually(async () => {
        text = await scrape();
        return (
          (value(text, 'rtccdn_ingress_bitrate_bps{stream="metered"}') ?? 0) > 0 &&
          (value(text, 'rtccdn_egress_bitrate_bps{stream="metered"}') ?? 0) > 0
        );
      }, 12_000),
    ).toBe(true);
    expect(await viewer.stop(running.baseUrl)).toBe(200);
    expect(await publisher.unpublish(running.baseUrl)).toBe(200);
    text = await scrape();
    expect(value(text, 'rtccdn_sessions_closed_total{protocol="whep",reason="client-delete"}')).toBe(1);
    expect(value(text, 'rtccdn_sessions_closed_total{protocol="whip",reason="client-delete"}')).toBe(1);
    expect(value(text, 'rtccdn_publishers')).toBe(0);
    expect(text).not.toContain('rtccdn_viewers{stream="metered"}');
  }, 30_000);
});
