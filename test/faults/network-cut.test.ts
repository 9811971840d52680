/**
 * A node's network cut (issue 15): the region's relay edge runs in a network namespace this test
 * creates, joined by a veth pair whose link is brought down and up again. Viewers of the other
 * edge keep playing (their edge relinks to the origin at once); the cut edge drops out of the
 * registry and the origin reaps its relay; when the link is back, the edge registers again and
 * plays again, and nothing is left behind. Needs root and iproute2 (skipped otherwise).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { TestCluster } from '../../scripts/harness/cluster.js';
import { createNetns, type NetnsLink, netnsAvailable } from '../../scripts/harness/netns.js';
import { eventually } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';

if (!netnsAvailable()) console.warn('network-cut test skipped: it needs root and iproute2 (ip netns)');

(netnsAvailable() ? describe : describe.skip)('a network cut isolating the region’s relay edge', () => {
  let netns: NetnsLink;
  let redis: RedisServer;
  let cluster: TestCluster;
  const peers: { close(): void }[] = [];
  const keys = new ClusterKeys();
  const url = (id: string) => cluster.node(id).baseUrl;

  beforeAll(async () => {
    netns = await createNetns();
    redis = await startRedisServer({ bind: netns.hostIp });
    cluster = new TestCluster(`redis://${netns.hostIp}:${redis.port}`, { RELAY_LINGER_MS: '1500' });
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'a', address: netns.hostIp },
      { id: 'edge-cut', role: 'edge', region: 'a', address: netns.nsIp, wrap: netns.exec },
      { id: 'edge-2', role: 'edge', region: 'a', address: netns.hostIp },
    );
  }, 90_000);
  afterEach(() => {
    for (const peer of peers.splice(0)) peer.close();
  });
  afterAll(async () => {
    await netns?.restore().catch(() => undefined);
    await cluster?.stopAll();
    await redis?.stop();
    await netns?.remove();
  });

  it('keeps the other edge’s viewers playing, reaps what the cut edge held, and takes it back after', async () => {
    const publisher = new TestPublisher({ audio: true });
    peers.push(publisher);
    expect((await publisher.publish(url('origin'), 'cut')).status).toBe(201);
    const onCut = new TestViewer();
    const onEdge2 = new TestViewer();
    peers.push(onCut, onEdge2);
    expect((await onCut.play(url('edge-cut'), 'cut')).status).toBe(201);
    await onCut.waitForFrames(5);
    expect((await onEdge2.play(url('edge-2'), 'cut')).status).toBe(201);
    await onEdge2.waitForFrames(5);
    expect((await cluster.dump('edge-2')).relayedStreams[0]?.upstream).toBe('edge-cut');

    await netns.cut();
    // The other edge finds its upstream unreachable and pulls from the origin: same session.
    await onEdge2.waitForFrames(onEdge2.framesWithCode + 30);
    expect(onEdge2.pc.connectionState).toBe('connected');
    expect((await cluster.dump('edge-2')).relayedStreams[0]?.upstream).toBe('origin');
    // The cut edge's record expires and the origin reaps its relay: one relay left (edge-2's).
    const admin = new Redis(redis.url);
    try {
      expect(await eventually(async () => (await admin.exists(keys.node('edge-cut'))) === 0, 15_000)).toBe(
        true,
      );
      expect(await eventually(async () => (await cluster.dump('origin')).relaysOut === 1, 15_000)).toBe(true);

      await netns.restore();
      expect(
        await eventually(async () => {
          const ready = await fetch(`${url('edge-cut')}/readyz`).catch(() => undefined);
          return ready?.status === 200;
        }, 20_000),
      ).toBe(true);
      expect(await admin.exists(keys.node('edge-cut'))).toBe(1);
    } finally {
      admin.disconnect();
    }
    // Its relay was reaped upstream: it relinks (the origin answers that the relay is gone), and
    // its viewer, cut off with it for less than the ICE consent timeout (30 s), plays again on
    // its session; new viewers play too.
    await onCut.waitForFrames(onCut.framesWithCode + 10, 20_000);
    expect(onCut.pc.connectionState).toBe('connected');
    const after = new TestViewer();
    peers.push(after);
    expect((await after.play(url('edge-cut'), 'cut')).status).toBe(201);
    await after.waitForFrames(10);
    const [cutDump, edge2Dump, originDump] = await Promise.all([
      cluster.dump('edge-cut'),
      cluster.dump('edge-2'),
      cluster.dump('origin'),
    ]);
    expect(cutDump.relayedStreams).toHaveLength(1);
    expect(edge2Dump.relayedStreams).toHaveLength(1);
    // Every relay the origin serves feeds an edge that pulls from it; none is left over.
    const fromOrigin = [cutDump, edge2Dump].filter((dump) => dump.relayedStreams[0]?.upstream === 'origin');
    expect(originDump.relaysOut).toBe(fromOrigin.length);
  }, 90_000);
});
