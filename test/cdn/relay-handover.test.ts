/**
 * Relay hand-over on drain (issue 15): the region's relay edge — the one other edges of its
 * region pull a stream through — gives its relay lease up when it starts draining (drain API or
 * SIGTERM), and the other edges move to another relay edge (one of them takes the lease and pulls
 * from the origin) while it still serves them, instead of failing over when it exits. Their
 * viewers keep playing throughout and after it exits; their upstream switch is the hand-over
 * ("regional relay edge draining"), never a failover ("upstream lost"). Real Redis, node
 * processes and libwebrtc peers; the freeze, if any, is the benchmark's to measure.
 */
import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';

describe('relay hand-over when the region’s relay edge drains', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1500', FANOUT_LINGER_MS: '500' },
    { id: 'origin-h', role: 'origin', region: 'h' },
    { id: 'edge-h1', role: 'edge', region: 'h', env: { DRAIN_DEADLINE_MS: '60000' } },
    { id: 'edge-h2', role: 'edge', region: 'h' },
    { id: 'edge-h3', role: 'edge', region: 'h' },
    { id: 'edge-h4', role: 'edge', region: 'h', env: { DRAIN_DEADLINE_MS: '60000' } },
  );
  const { url, publisher, viewer } = fixture;
  const keys = new ClusterKeys();
  const relayHolder = async (stream: string): Promise<string | undefined> => {
    const redis = new Redis(fixture.redis.url);
    try {
      const lease = await redis.get(keys.relay('h', stream));
      return lease === null ? undefined : (JSON.parse(lease) as { nodeId: string }).nodeId;
    } finally {
      redis.disconnect();
    }
  };
  const upstreamOf = async (edge: string, stream: string) =>
    (await fixture.cluster.dump(edge)).relayedStreams.find((relayed) => relayed.name === stream)?.upstream;
  const switchCount = async (edge: string, reason: string) => {
    const line = (await switches(edge)).find((entry) => entry.includes(`reason="${reason}"`));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  };
  const switches = async (edge: string) =>
    (await (await fetch(`${fixture.internalUrl(edge)}/metrics`)).text())
      .split('\n')
      .filter((line) => line.startsWith('rtccdn_upstream_switches_total{'));
  const drain = (id: string, body: { draining: boolean; deadlineMs?: number }) =>
    fixture.cluster.client.request<{ draining: boolean; viewers: number }>(
      'POST',
      fixture.cluster.target(id),
      '/internal/v1/drain',
      body,
    );

  it('the relay edge drained by the API hands its lease over; the others move while it still serves, and keep playing when it exits', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-h'), 'handover')).status).toBe(201);
    // edge-h1 is the first edge with a viewer: the region's relay edge; h2 and h3 pull through it.
    const onRelayEdge = viewer();
    expect((await onRelayEdge.play(url('edge-h1'), 'handover')).status).toBe(201);
    await onRelayEdge.waitForFrames(5);
    const onH2 = viewer();
    expect((await onH2.play(url('edge-h2'), 'handover')).status).toBe(201);
    const onH3 = viewer();
    expect((await onH3.play(url('edge-h3'), 'handover')).status).toBe(201);
    await Promise.all([onH2.waitForFrames(5), onH3.waitForFrames(5)]);
    expect(await relayHolder('handover')).toBe('edge-h1');
    expect([await upstreamOf('edge-h2', 'handover'), await upstreamOf('edge-h3', 'handover')]).toEqual([
      'edge-h1',
      'edge-h1',
    ]);

    expect(await drain('edge-h1', { draining: true, deadlineMs: 60_000 })).toEqual({
      draining: true,
      viewers: 1,
    });
    // Long before the deadline, and with edge-h1 still serving its own viewer, h2 and h3 pull
    // from elsewhere: one of them is the region's relay edge, from the origin; the other from it.
    const moved = await eventually(async () => {
      const holder = await relayHolder('handover');
      const h2 = await upstreamOf('edge-h2', 'handover');
      const h3 = await upstreamOf('edge-h3', 'handover');
      if (holder !== 'edge-h2' && holder !== 'edge-h3') return false;
      const other = holder === 'edge-h2' ? h3 : h2;
      return (holder === 'edge-h2' ? h2 : h3) === 'origin-h' && other === holder;
    }, 15_000);
    expect(moved).toBe(true);
    expect((await fixture.cluster.dump('edge-h1')).relaysOut).toBe(0);
    // The draining edge pulls for its own viewer from the origin, and holds no lease.
    expect(await upstreamOf('edge-h1', 'handover')).toBe('origin-h');
    await onRelayEdge.waitForFrames(onRelayEdge.framesWithCode + 15);
    await Promise.all([
      onH2.waitForFrames(onH2.framesWithCode + 15),
      onH3.waitForFrames(onH3.framesWithCode + 15),
    ]);

    // The drained edge exits (its viewer left): the others play on, with no failover at all.
    onRelayEdge.close();
    expect(await fixture.cluster.stop('edge-h1')).toBe(0);
    await Promise.all([
      onH2.waitForFrames(onH2.framesWithCode + 30),
      onH3.waitForFrames(onH3.framesWithCode + 30),
    ]);
    expect([onH2.pc.connectionState, onH3.pc.connectionState]).toEqual(['connected', 'connected']);
    for (const edge of ['edge-h2', 'edge-h3']) {
      const lines = await switches(edge);
      expect(lines.filter((line) => line.includes('reason="upstream lost"'))).toEqual([]);
    }
    const holder = (await relayHolder('handover'))!;
    expect(await switches(holder)).toEqual([
      expect.stringMatching(/reason="regional relay edge draining"\} 1$/),
    ]);
    expect(await pub.unpublish(url('origin-h'))).toBe(200);
  }, 60_000);

  it('SIGTERM to a relay edge without viewers of its own: it hands over and exits once the others moved', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-h'), 'sigterm')).status).toBe(201);
    // edge-h4 becomes the relay edge through its viewer, which then leaves (its relay lingers).
    const first = viewer();
    expect((await first.play(url('edge-h4'), 'sigterm')).status).toBe(201);
    await first.waitForFrames(5);
    const onH2 = viewer();
    expect((await onH2.play(url('edge-h2'), 'sigterm')).status).toBe(201);
    await onH2.waitForFrames(5);
    expect(await upstreamOf('edge-h2', 'sigterm')).toBe('edge-h4');
    first.close();
    expect(await eventually(async () => (await fixture.cluster.dump('edge-h4')).sessions === 0, 10_000)).toBe(
      true,
    );

    const handedOverBefore = await switchCount('edge-h2', 'regional relay edge draining');
    // It still serves edge-h2: SIGTERM drains it (hand-over) instead of closing at once.
    expect(await fixture.cluster.stop('edge-h4')).toBe(0);
    expect(await upstreamOf('edge-h2', 'sigterm')).toBe('origin-h');
    expect(await relayHolder('sigterm')).toBe('edge-h2');
    await onH2.waitForFrames(onH2.framesWithCode + 30);
    expect(onH2.pc.connectionState).toBe('connected');
    expect(await switchCount('edge-h2', 'upstream lost')).toBe(0);
    expect(await switchCount('edge-h2', 'regional relay edge draining')).toBe(handedOverBefore + 1);
    expect(await pub.unpublish(url('origin-h'))).toBe(200);
  }, 60_000);
});
